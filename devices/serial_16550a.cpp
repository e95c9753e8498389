#include "devices/serial_16550a.h"

namespace kvmini {

using namespace uart;

Serial16550a::Serial16550a(IrqLine irq, Sink sink, size_t host_backlog)
    : irq_(irq), sink_(std::move(sink)), backlog_limit_(host_backlog)
{
}

void Serial16550a::reset()
{
    std::lock_guard lock(mutex_);
    ier_ = 0;
    fcr_ = 0;
    lcr_ = 0;
    mcr_ = 0;
    lsr_errors_ = 0;
    msr_deltas_ = 0;
    scr_ = 0;
    divisor_ = kResetDivisor;
    thre_pending_ = false;
    clear_rx();
    backlog_.clear();
    last_rx_ = 0;
    update_irq();
}

void Serial16550a::read(uint64_t offset, std::span<uint8_t> data)
{
    std::lock_guard lock(mutex_);
    if (data.size() != 1) ++stats_.wide_accesses;
    for (size_t i = 0; i < data.size(); ++i) {
        // The bus only hands us accesses inside our 8 ports.
        data[i] = offset + i < kPortCount ? read_register(offset + i) : 0xff;
        refill_rx();
    }
    update_irq();
}

void Serial16550a::write(uint64_t offset, std::span<const uint8_t> data)
{
    if (data.size() != 1) {
        std::lock_guard lock(mutex_);
        ++stats_.wide_accesses;
    }
    for (size_t i = 0; i < data.size(); ++i) {
        if (offset + i >= kPortCount) break;
        std::unique_lock lock(mutex_);
        const bool transmit = write_register(offset + i, data[i]);
        refill_rx();
        update_irq();
        if (!transmit || !sink_) continue;
        // Take the transmit lock before letting go of the register lock, so
        // that bytes from several vCPUs reach the sink in THR-write order,
        // without holding the register lock while the sink may block.
        std::unique_lock tx_lock(tx_mutex_);
        lock.unlock();
        const uint8_t byte = data[i];
        sink_(std::span<const uint8_t>(&byte, 1));
    }
}

uint8_t Serial16550a::read_register(uint64_t offset)
{
    const bool dlab = (lcr_ & kLcrDlab) != 0;
    switch (offset) {
    case kRbrThr: {
        if (dlab) return static_cast<uint8_t>(divisor_ & 0xff);
        if (rx_count_ == 0) {
            ++stats_.empty_rbr_reads;
            return last_rx_;
        }
        last_rx_ = rx_fifo_[rx_head_];
        rx_head_ = (rx_head_ + 1) % kFifoSize;
        --rx_count_;
        return last_rx_;
    }
    case kIer:
        return dlab ? static_cast<uint8_t>(divisor_ >> 8) : ier_;
    case kIirFcr: {
        const uint8_t id = pending_interrupt();
        // Reading IIR while THRE is the interrupt it reports clears it.
        if (id == kIirThre) thre_pending_ = false;
        return static_cast<uint8_t>(id | (fifo_enabled() ? kIirFifoEnabled : 0));
    }
    case kLcr:
        return lcr_;
    case kMcr:
        return mcr_;
    case kLsr: {
        uint8_t lsr = static_cast<uint8_t>(lsr_errors_ | kLsrThre | kLsrTemt);
        if (rx_count_ > 0) lsr |= kLsrDr;
        lsr_errors_ = 0;
        return lsr;
    }
    case kMsr: {
        const uint8_t msr = static_cast<uint8_t>(modem_inputs() | msr_deltas_);
        msr_deltas_ = 0;
        return msr;
    }
    case kScr:
        return scr_;
    }
    return 0xff;
}

bool Serial16550a::write_register(uint64_t offset, uint8_t value)
{
    const bool dlab = (lcr_ & kLcrDlab) != 0;
    switch (offset) {
    case kRbrThr:
        if (dlab) {
            divisor_ = static_cast<uint16_t>((divisor_ & 0xff00) | value);
            return false;
        }
        // Writing THR clears a THRE interrupt; the byte leaves at once, so
        // THR is empty again and THRE is re-raised.
        thre_pending_ = true;
        if (loopback()) {
            push_rx(value);
            return false;
        }
        ++stats_.tx_bytes;
        return true;
    case kIer: {
        if (dlab) {
            divisor_ = static_cast<uint16_t>((divisor_ & 0x00ff) | (value << 8));
            return false;
        }
        if (value & ~kIerMask) ++stats_.reserved_bits;
        const uint8_t old = ier_;
        ier_ = value & kIerMask;
        // Enabling ETBEI while THR is empty (always, here) raises THRE even if
        // an earlier IIR read had cleared it; drivers toggle IER to get a
        // first THRE interrupt.
        if ((ier_ & kIerEtbei) && !(old & kIerEtbei)) thre_pending_ = true;
        return false;
    }
    case kIirFcr: {
        if (!(value & kFcrEnable)) {
            if (value != 0) ++stats_.fcr_ignored;
            if (fifo_enabled()) clear_rx();  // leaving FIFO mode empties the FIFOs
            fcr_ = 0;
            return false;
        }
        if (!fifo_enabled() || (value & kFcrClearRx)) clear_rx();
        // kFcrClearTx: the TX FIFO is always empty.
        fcr_ = value & (kFcrEnable | kFcrDmaMode | kFcrTriggerMask);
        return false;
    }
    case kLcr:
        lcr_ = value;
        return false;
    case kMcr: {
        if (value & ~kMcrMask) ++stats_.reserved_bits;
        const uint8_t old_inputs = modem_inputs();
        mcr_ = value & kMcrMask;
        update_msr_deltas(old_inputs);
        return false;
    }
    case kLsr:
    case kMsr:
        ++stats_.readonly_writes;
        return false;
    case kScr:
        scr_ = value;
        return false;
    }
    return false;
}

size_t Serial16550a::rx_trigger() const
{
    return kRxTriggerLevels[(fcr_ & kFcrTriggerMask) >> kFcrTriggerShift];
}

bool Serial16550a::push_rx(uint8_t byte)
{
    if (rx_count_ == rx_capacity()) {
        lsr_errors_ |= kLsrOe;
        ++stats_.rx_overruns;
        if (fifo_enabled()) return false;  // the FIFO keeps its bytes; the new one is lost
        // 16450 mode: the new character overwrites the unread one in RBR.
        rx_fifo_[rx_head_] = byte;
        ++stats_.rx_bytes;
        return true;
    }
    rx_fifo_[(rx_head_ + rx_count_) % kFifoSize] = byte;
    ++rx_count_;
    ++stats_.rx_bytes;
    return true;
}

void Serial16550a::clear_rx()
{
    rx_head_ = 0;
    rx_count_ = 0;
}

void Serial16550a::refill_rx()
{
    while (!backlog_.empty() && !loopback() && rx_count_ < rx_capacity()) {
        push_rx(backlog_.front());
        backlog_.pop_front();
    }
}

size_t Serial16550a::receive(std::span<const uint8_t> bytes)
{
    std::lock_guard lock(mutex_);
    size_t taken = 0;
    for (uint8_t byte : bytes) {
        if (backlog_.empty() && !loopback() && rx_count_ < rx_capacity()) {
            push_rx(byte);
            ++taken;
        } else if (backlog_.size() < backlog_limit_) {
            backlog_.push_back(byte);
            ++taken;
        } else if (loopback()) {
            ++stats_.rx_dropped_loopback;
        } else {
            taken += push_rx(byte) ? 1 : 0;  // overrun
        }
    }
    update_irq();
    return taken;
}

size_t Serial16550a::rx_room() const
{
    std::lock_guard lock(mutex_);
    const size_t fifo_room = loopback() || !backlog_.empty() ? 0 : rx_capacity() - rx_count_;
    return fifo_room + (backlog_limit_ - backlog_.size());
}

uint8_t Serial16550a::modem_inputs() const
{
    if (!loopback()) return kMsrHostLines;
    uint8_t lines = 0;
    if (mcr_ & kMcrRts) lines |= kMsrCts;
    if (mcr_ & kMcrDtr) lines |= kMsrDsr;
    if (mcr_ & kMcrOut1) lines |= kMsrRi;
    if (mcr_ & kMcrOut2) lines |= kMsrDcd;
    return lines;
}

void Serial16550a::update_msr_deltas(uint8_t old_inputs)
{
    const uint8_t now = modem_inputs();
    const uint8_t changed = old_inputs ^ now;
    if (changed & kMsrCts) msr_deltas_ |= kMsrDcts;
    if (changed & kMsrDsr) msr_deltas_ |= kMsrDdsr;
    if (changed & kMsrDcd) msr_deltas_ |= kMsrDdcd;
    if ((old_inputs & kMsrRi) && !(now & kMsrRi)) msr_deltas_ |= kMsrTeri;  // trailing edge only
}

uint8_t Serial16550a::pending_interrupt() const
{
    if ((ier_ & kIerElsi) && (lsr_errors_ & kLsrErrorBits)) return kIirLineStatus;
    if ((ier_ & kIerErbfi) && rx_count_ > 0) {
        if (!fifo_enabled() || rx_count_ >= rx_trigger()) return kIirRxData;
        return kIirRxTimeout;  // below the trigger level: the (untimed) character timeout
    }
    if ((ier_ & kIerEtbei) && thre_pending_) return kIirThre;
    if ((ier_ & kIerEdssi) && msr_deltas_) return kIirModem;
    return kIirNoInt;
}

void Serial16550a::update_irq()
{
    // On a PC the UART's INTR reaches the IRQ line only through a buffer
    // enabled by the OUT2 pin; in loopback all modem output pins are forced
    // inactive, so the line is cut off then too.
    const bool level = pending_interrupt() != kIirNoInt && (mcr_ & kMcrOut2) && !loopback();
    if (level == irq_high_) return;
    irq_high_ = level;
    irq_.set_level(level);
}

bool Serial16550a::irq_level() const
{
    std::lock_guard lock(mutex_);
    return irq_high_;
}

Serial16550a::Stats Serial16550a::stats() const
{
    std::lock_guard lock(mutex_);
    return stats_;
}

}  // namespace kvmini
