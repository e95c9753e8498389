// User mode: every interrupt controller is kvmini's. No KVM_CREATE_IRQCHIP,
// no split: the 8259A pair, the I/O APIC and the PIT (PcChipset) and one
// local APIC model per vCPU (Lapic). KVM only runs the vCPUs; kvmini decides
// what each one takes and when.
//
// The path of an interrupt:
//  - a GSI level goes to the 8259A input and the I/O APIC pin; the I/O
//    APIC's messages and the devices' MSIs become APIC-bus messages, routed
//    to the local APIC models (physical/logical, lowest priority); IPIs from
//    a guest's ICR go the same way;
//  - before each KVM_RUN of a vCPU, before_run() takes what its APIC holds:
//    INIT (reset the vCPU; an AP then waits for SIPI), SIPI (start in real
//    mode at vector << 12), NMI (KVM_NMI), then one vector by KVM_INTERRUPT,
//    only when the last exit said the vCPU can take it
//    (ready_for_interrupt_injection and IF; KVM overwrites an undelivered
//    vector without an error), the 8259A's ExtINT first on the boot vCPU
//    when its LINT0 takes it; otherwise it asks for an interrupt window, and
//    clears that request when nothing is pending;
//  - HLT comes to kvmini (KVM_EXIT_HLT): the vCPU thread sleeps on its
//    condition variable until its APIC has something it can take (a vector
//    with IF=1, NMI, INIT); every sender sets the state under the one lock,
//    then notifies the sleeper or kicks a running vCPU out of KVM_RUN, and
//    the vCPU rechecks under the same lock, so no wake-up is lost;
//  - the APIC's page (MMIO exits at IA32_APIC_BASE) and its x2APIC MSRs and
//    IA32_TSC_DEADLINE (KVM_CAP_X86_USER_SPACE_MSR: x2APIC MSRs are invalid
//    for KVM without its LAPIC; 0x6e0 is denied by an MSR filter, since KVM
//    would drop it silently) are answered here; CR8 is kept in step with the
//    TPR through kvm_run on every entry and exit; a level-triggered vector's
//    EOI is broadcast to the I/O APIC;
//  - a guest that lowers CR8 below a pending vector's class must get it. KVM
//    reports that with KVM_EXIT_SET_TPR on VMX/SVM, but not every KVM does
//    (the software kvm_pvm hosts never exit for it): while a vector is held
//    back by the TPR alone, the timer thread kicks that vCPU every
//    kTprWatchNs so that its CR8 is read again; nothing is polled otherwise;
//  - the APIC timers run on one timer thread (DeadlineTimer), at the same
//    1 GHz nominal bus as KVM's; the PIT's ticks also reach every vCPU whose
//    LINT0 is in NMI mode (the NMI-watchdog virtual wire, as KVM's PIT does).
//
// Locking: one mutex guards every Lapic and every vCPU's run state. The
// chipset's models are never called with it held (their outputs come back
// here and take it).
#pragma once

#include <linux/kvm.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "irqchip/backends/deadline_timer.h"
#include "irqchip/irqchip.h"
#include "irqchip/models/lapic.h"
#include "irqchip/backends/pc_chipset.h"

namespace kvmini {

class UserIrqChip : public IrqChip {
public:
    explicit UserIrqChip(PitPolicy pit_policy);
    ~UserIrqChip() override;

    std::string mode_name() const override { return "user"; }
    void create(Vm& vm) override;
    void attach_vcpu(IrqVcpu& vcpu) override;
    void attach_buses(Bus& pio, Bus& mmio) override;
    void filter_cpuid(std::vector<kvm_cpuid_entry2>& entries) const override;
    void set_gsi_level(uint32_t gsi, bool level) override { chipset_.set_gsi_level(gsi, level); }
    void send_msi(const MsiMessage& msg) override;
    bool before_run(IrqVcpu& vcpu) override;
    void on_halt(IrqVcpu& vcpu) override;
    bool handle_mmio(IrqVcpu& vcpu, uint64_t addr, std::span<uint8_t> data, bool is_write) override;
    bool read_msr(IrqVcpu& vcpu, uint32_t index, uint64_t& value) override;
    bool write_msr(IrqVcpu& vcpu, uint32_t index, uint64_t value) override;
    void kick(IrqVcpu& vcpu) override;
    IrqChipStats stats() const override;

private:
    enum class RunState { kRunning, kHalted, kWaitForSipi };
    struct Cpu {
        explicit Cpu(IrqVcpu& v) : vcpu(v), lapic(v.index(), v.index() == 0) {}
        IrqVcpu& vcpu;
        Lapic lapic;
        std::condition_variable cv;
        RunState state = RunState::kRunning;
        bool halted_with_if = false;  // IF when it halted
        bool kicked = false;
        std::thread::id runner;        // the thread in before_run() last
        bool entered = false;          // has been through KVM_RUN once
        uint8_t cr8_sent = 0;          // what kvm_run.cr8 held at the last entry
        uint64_t apic_base_seen = 0;   // IA32_APIC_BASE as last synced with KVM
        // While a vector is held back by the TPR alone: when to kick the vCPU
        // so that its CR8 is read again (see kTprWatchNs).
        std::optional<uint64_t> tpr_watch_ns;
        // Counted under the lock.
        uint64_t injections = 0, extint_injections = 0, nmis = 0, windows = 0, halts = 0, wakeups = 0;
        uint64_t inits = 0, sipis = 0, tpr_watch_kicks = 0;
    };
    // Who to kick once the lock is released.
    using KickList = std::vector<IrqVcpu*>;

    Cpu& cpu(const IrqVcpu& vcpu);
    void deliver(const ApicMessage& m);
    void deliver_locked(const ApicMessage& m, KickList& kicks);
    void wake_locked(Cpu& c, KickList& kicks);
    void kick_all(const KickList& kicks);
    // After a register access: route the APIC's IPIs (under the lock) and
    // return its EOIs, for the I/O APIC and the PIT once the lock is released.
    LapicOutputs drain_outputs_locked(Cpu& c, KickList& kicks);
    void finish_access(const LapicOutputs& out, const KickList& kicks, bool timer_changed);
    bool extint_ready_locked(const Cpu& c);
    bool wakeup_pending_locked(Cpu& c);
    void sync_from_exit_locked(Cpu& c);
    void reset_for_init_locked(Cpu& c);
    void start_at_sipi_locked(Cpu& c, uint8_t vector);
    void on_pic_output(bool level);
    void on_pit_tick();
    std::optional<uint64_t> next_timer_ns();
    void on_timer(uint64_t now_ns);

    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<Cpu>> cpus_;
    std::vector<const Lapic*> lapics_;  // the APIC bus: cpus_[i].lapic
    unsigned lowest_priority_rr_ = 0;
    std::array<uint64_t, 8> ipis_by_mode_{};  // under the lock, by ApicDeliveryMode
    std::atomic<uint64_t> msis_{0}, eois_{0}, level_eois_{0}, ipis_{0}, undeliverable_{0}, refused_injections_{0};
    PcChipset chipset_;
    // Last members: their threads stop before anything they use goes.
    std::unique_ptr<DeadlineTimer> apic_timer_;
};

}  // namespace kvmini
