// The PC's legacy interrupt chipset as kvmini emulates it in the split and
// user irqchip modes: the 8259A pair, the I/O APIC and the 8254 PIT with its
// timer thread, wired as gsi_layout.h says. The backends differ only in
// where the chipset's outputs go (KVM's LAPICs or kvmini's), so they share
// this piece and give it those outputs.
//
// The PIT tick policy lives here too: with `reinject`, each tick waits for
// the previous one to be taken: the 8259A's EOI of IRQ 0, or, through the
// I/O APIC, its delivery (KVM reports no EOI of an edge vector). A tick that
// met only masked inputs is lost, as on the chips; one left with the 8259A
// when the guest moved the timer elsewhere is released, as KVM's PIT does.
// A tick taken by delivery (or released) is acknowledged by the timer thread
// kMinTimerPeriodNs later (at most one per kMinTimerPeriodNs of time, a late
// wake-up taking those that came due), not at once: otherwise each acknowledgement would
// deliver the next pending tick from within the same call, and a backlog
// would leave as one burst of interrupts from one vCPU's register write.
// The timer thread never wakes more often than every kMinTimerPeriodNs (KVM
// clamps its PIT's period to 200 us the same way).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "irqchip/backends/deadline_timer.h"
#include "irqchip/models/ioapic.h"
#include "irqchip/models/pic_8259.h"
#include "irqchip/models/pit_8254.h"

namespace kvmini {

class Bus;

class PcChipset {
public:
    struct Outputs {
        // An I/O APIC message for the LAPICs (never ExtINT: that pin hands the
        // CPU over to the 8259A, whose output is pic_output).
        std::function<void(const IoapicDelivery&)> deliver;
        // The 8259A's INT pin (to the boot CPU's LINT0).
        std::function<void(bool level)> pic_output;
        // After each guest write to the I/O APIC (split mode mirrors routes).
        std::function<void()> ioapic_written = [] {};
        // Each rising edge of the PIT's OUT0 (the NMI-watchdog virtual wire).
        std::function<void()> pit_tick = [] {};
    };

    PcChipset(PitPolicy pit_policy, Outputs outputs);
    ~PcChipset();  // stop()
    // Ends the PIT's timer thread (joined): no output comes from it after.
    // Owners call it first when they go, before their own state does.
    void stop();
    PcChipset(const PcChipset&) = delete;
    PcChipset& operator=(const PcChipset&) = delete;

    // Puts the models' registers on the buses and starts the PIT's clock.
    void attach(Bus& pio, Bus& mmio);

    // A GSI's level, from the routing layer.
    void set_gsi_level(uint32_t gsi, bool level);
    // An EOI for `vector` reaching the I/O APIC.
    void ioapic_eoi(uint8_t vector) { ioapic_.eoi(vector); }
    // A backend that sees every local APIC EOI (user mode) turns this on
    // before attach() and reports them to lapic_eoi(): a PIT tick sent
    // through the I/O APIC is then acknowledged by the guest's EOI of its
    // vector, as KVM's PIT does with its acknowledgement notifier, so the
    // next tick never lands on one still pending (where it would merge into
    // the same IRR bit). A tick whose EOI cannot come (its pin rerouted, or
    // the message dropped) is released after kEoiWaitNs.
    void pace_ticks_by_eoi() { eoi_paced_ = true; }
    void lapic_eoi(uint8_t vector);
    static constexpr uint64_t kEoiWaitNs = 100'000'000;

    Pic8259Pair& pic() { return pic_; }
    const Ioapic& ioapic() const { return ioapic_; }
    PitPolicy pit_policy() const { return pit_policy_; }
    uint64_t gsi_raises() const { return raises_.load(std::memory_order_relaxed); }

private:
    void on_pit_output(bool level);
    bool timer_goes_to_pic() const;
    // A tick left waiting for an 8259A EOI or a LAPIC EOI that will not
    // come (the guest moved or masked the timer) is released.
    void release_stranded_tick();
    void on_pic_eoi(unsigned irq);
    void poke_timer();
    // Acknowledge the tick in flight kMinTimerPeriodNs from now (timer thread).
    void ack_tick_later();
    std::optional<uint64_t> next_timer_event();
    void on_timer(uint64_t now_ns);

    PitPolicy pit_policy_;
    Outputs outputs_;
    Pic8259Pair pic_;
    Ioapic ioapic_;
    Pit8254 pit_;
    std::atomic<bool> tick_awaits_pic_eoi_{false};
    bool eoi_paced_ = false;                    // set before attach()
    std::atomic<int> tick_awaits_vector_{-1};   // the LAPIC EOI a tick waits for, -1: none
    std::atomic<uint64_t> raises_{0};
    std::mutex timer_mutex_;
    std::optional<uint64_t> ack_due_ns_;  // under timer_mutex_
    std::optional<uint64_t> eoi_deadline_ns_;  // under timer_mutex_: release the awaited tick then
    static constexpr unsigned kMaxAcksPerWake = 64;
    uint64_t last_wake_ns_ = 0;           // under timer_mutex_
    // Last member: destroyed first, so its thread never sees a dead model.
    std::unique_ptr<DeadlineTimer> pit_timer_;
};

}  // namespace kvmini
