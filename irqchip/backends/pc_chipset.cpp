#include "irqchip/backends/pc_chipset.h"

#include "devices/bus.h"
#include "irqchip/gsi_layout.h"
#include "vmm/memory_layout.h"

namespace kvmini {

PcChipset::PcChipset(PitPolicy pit_policy, Outputs outputs)
    : pit_policy_(pit_policy),
      outputs_(std::move(outputs)),
      pic_([this](bool level) { outputs_.pic_output(level); }, [this](unsigned irq) { on_pic_eoi(irq); }),
      ioapic_(
          [this](const IoapicDelivery& d) {
              // ExtINT: the pin hands the CPU over to the 8259A, whose output
              // the backends already follow.
              if (d.delivery_mode != IoapicDeliveryMode::kExtInt) outputs_.deliver(d);
          },
          IoapicConfig{}),
      pit_([this](bool level) { on_pit_output(level); }, pit_policy)
{
}

PcChipset::~PcChipset() { stop(); }

void PcChipset::stop()
{
    if (pit_timer_) pit_timer_->stop();
}

void PcChipset::poke_timer()
{
    if (pit_timer_) pit_timer_->poke();
}

void PcChipset::attach(Bus& pio, Bus& mmio)
{
    pic_.attach(pio, [this] { release_timer_tick_if_pic_gone(); });
    pit_.attach(pio, [this] { poke_timer(); });
    ioapic_.attach(mmio, [this] {
        outputs_.ioapic_written();
        release_timer_tick_if_pic_gone();
    });
    pit_timer_ = std::make_unique<DeadlineTimer>(
        "PIT", [this] { return next_timer_event(); }, [this](uint64_t now) { on_timer(now); });
    pit_timer_->start();  // after pit_timer_ is set: the thread itself pokes it
}

std::optional<uint64_t> PcChipset::next_timer_event()
{
    std::optional<uint64_t> next = pit_.next_event_ns();
    std::lock_guard lock(timer_mutex_);
    if (ack_due_ns_) next = next ? std::min(*next, *ack_due_ns_) : *ack_due_ns_;
    if (next) next = std::max(*next, last_wake_ns_ + Pit8254::kMinTimerPeriodNs);
    return next;
}

void PcChipset::on_timer(uint64_t now_ns)
{
    // One acknowledgement per kMinTimerPeriodNs of time, not per wake-up: a
    // wake-up that comes late (a loaded host) takes those that came due
    // meanwhile, so the guest's tick rate does not depend on how promptly
    // this thread runs. Each one may send the next pending tick, which asks
    // for the next acknowledgement (ack_tick_later).
    unsigned due = 0;
    {
        std::lock_guard lock(timer_mutex_);
        last_wake_ns_ = now_ns;
        if (ack_due_ns_ && *ack_due_ns_ <= now_ns) {
            due = static_cast<unsigned>(
                std::min<uint64_t>(1 + (now_ns - *ack_due_ns_) / Pit8254::kMinTimerPeriodNs, kMaxAcksPerWake));
            ack_due_ns_.reset();
        }
    }
    for (unsigned i = 0; i < due; ++i) {
        pit_.ack_irq();
        std::lock_guard lock(timer_mutex_);
        if (!ack_due_ns_) break;                  // no new tick went out
        if (i + 1 < due) ack_due_ns_.reset();     // its slot has passed already: take it now
    }
    pit_.on_timer(now_ns);
}

void PcChipset::ack_tick_later()
{
    {
        std::lock_guard lock(timer_mutex_);
        if (ack_due_ns_) return;
        ack_due_ns_ = DeadlineTimer::now_ns() + Pit8254::kMinTimerPeriodNs;
    }
    poke_timer();
}

void PcChipset::set_gsi_level(uint32_t gsi, bool level)
{
    if (level) raises_.fetch_add(1, std::memory_order_relaxed);
    if (auto pin = gsi::pic_pin(gsi)) pic_.set_irq(*pin, level);
    if (auto pin = gsi::ioapic_pin(gsi)) ioapic_.set_irq(*pin, level);
}

bool PcChipset::timer_goes_to_pic() const
{
    // Through the I/O APIC when its pin is live; through the 8259A only where
    // that pin is off (masked, or handing over as ExtINT) and IRQ 0 is open.
    const auto timer_pin = gsi::ioapic_pin(gsi::kPitIrq);
    const auto message = timer_pin ? ioapic_.programmed_message(*timer_pin) : std::nullopt;
    if (message && message->delivery_mode != IoapicDeliveryMode::kExtInt) return false;
    return (pic_.imr(0) & (1u << gsi::kPitIrq)) == 0;
}

void PcChipset::on_pit_output(bool level)
{
    // The 8259A's EOI of IRQ 0 (on_pic_eoi) can come before set_gsi_level()
    // returns: decide where the tick goes first.
    const bool reinject_tick = level && pit_policy_ == PitPolicy::kReinject;
    const bool via_pic = reinject_tick && timer_goes_to_pic();
    if (via_pic) tick_awaits_pic_eoi_.store(true);
    set_gsi_level(gsi::kPitIrq, level);
    if (level) outputs_.pit_tick();
    if (reinject_tick && !via_pic) ack_tick_later();
}

void PcChipset::release_timer_tick_if_pic_gone()
{
    if (tick_awaits_pic_eoi_.load() && !timer_goes_to_pic() && tick_awaits_pic_eoi_.exchange(false))
        ack_tick_later();
}

void PcChipset::on_pic_eoi(unsigned irq)
{
    if (irq == gsi::kPitIrq && tick_awaits_pic_eoi_.exchange(false)) pit_.ack_irq();
}

}  // namespace kvmini
