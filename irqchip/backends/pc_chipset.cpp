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
    pic_.attach(pio, [this] { release_stranded_tick(); });
    pit_.attach(pio, [this] { poke_timer(); });
    ioapic_.attach(mmio, [this] {
        outputs_.ioapic_written();
        release_stranded_tick();
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
    if (eoi_deadline_ns_ && tick_awaits_vector_.load() >= 0)
        next = next ? std::min(*next, *eoi_deadline_ns_) : *eoi_deadline_ns_;
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
    bool eoi_overdue = false;
    {
        std::lock_guard lock(timer_mutex_);
        last_wake_ns_ = now_ns;
        if (eoi_deadline_ns_ && *eoi_deadline_ns_ <= now_ns) {
            eoi_deadline_ns_.reset();
            eoi_overdue = true;
        }
        if (ack_due_ns_ && *ack_due_ns_ <= now_ns) {
            due = static_cast<unsigned>(
                std::min<uint64_t>(1 + (now_ns - *ack_due_ns_) / Pit8254::kMinTimerPeriodNs, kMaxAcksPerWake));
            ack_due_ns_.reset();
        }
    }
    // A tick whose EOI never came (the guest dropped it): released.
    if (int awaited = tick_awaits_vector_.load(); eoi_overdue && awaited >= 0 &&
                                                  tick_awaits_vector_.compare_exchange_strong(awaited, -1))
        pit_.ack_irq();
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
    // The 8259A's EOI of IRQ 0 (on_pic_eoi) or the LAPIC's EOI of the
    // vector (lapic_eoi) can come before set_gsi_level() returns: decide how
    // the tick will be acknowledged first.
    const bool reinject_tick = level && pit_policy_ == PitPolicy::kReinject;
    const bool via_pic = reinject_tick && timer_goes_to_pic();
    int via_vector = -1;
    if (reinject_tick && !via_pic && eoi_paced_) {
        const auto pin = gsi::ioapic_pin(gsi::kPitIrq);
        const auto m = pin ? ioapic_.programmed_message(*pin) : std::nullopt;
        if (m && (m->delivery_mode == IoapicDeliveryMode::kFixed ||
                  m->delivery_mode == IoapicDeliveryMode::kLowestPriority))
            via_vector = m->vector;
    }
    if (via_pic) tick_awaits_pic_eoi_.store(true);
    if (via_vector >= 0) {
        tick_awaits_vector_.store(via_vector);
        std::lock_guard lock(timer_mutex_);
        eoi_deadline_ns_ = DeadlineTimer::now_ns() + kEoiWaitNs;
    }
    set_gsi_level(gsi::kPitIrq, level);
    if (level) outputs_.pit_tick();
    if (reinject_tick && !via_pic && via_vector < 0) ack_tick_later();
}

void PcChipset::lapic_eoi(uint8_t vector)
{
    int expected = vector;
    if (tick_awaits_vector_.compare_exchange_strong(expected, -1)) pit_.ack_irq();
}

void PcChipset::release_stranded_tick()
{
    // As KVM's PIT does on a mask change: a tick left with the 8259A when the
    // guest masked IRQ 0 there (or moved the timer to the IOAPIC) will never
    // be acknowledged; nor one waiting for a vector's EOI once the timer's
    // pin no longer sends that vector.
    if (tick_awaits_pic_eoi_.load() && !timer_goes_to_pic() && tick_awaits_pic_eoi_.exchange(false))
        ack_tick_later();
    const int awaited = tick_awaits_vector_.load();
    if (awaited < 0) return;
    const auto pin = gsi::ioapic_pin(gsi::kPitIrq);
    const auto m = pin ? ioapic_.programmed_message(*pin) : std::nullopt;
    int expected = awaited;
    if ((!m || m->vector != awaited) && tick_awaits_vector_.compare_exchange_strong(expected, -1)) ack_tick_later();
}

void PcChipset::on_pic_eoi(unsigned irq)
{
    if (irq == gsi::kPitIrq && tick_awaits_pic_eoi_.exchange(false)) pit_.ack_irq();
}

}  // namespace kvmini
