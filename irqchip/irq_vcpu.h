// What an irqchip backend needs of a vCPU, and nothing more: what the last
// exit said (may it take an interrupt now, IF, CR8, IA32_APIC_BASE), what to
// do before the next entry (inject a vector or an NMI, ask for an interrupt
// window, set CR8), the CPU's INIT and SIPI, and a kick out of KVM_RUN.
// vmm/kvm.h's Vcpu implements it on KVM; unit tests use a fake
// (tests/unit/fake_vcpu.h), so that the split and user policies are tested
// without KVM.
#pragma once

#include <cstdint>

namespace kvmini {

class IrqVcpu {
public:
    virtual ~IrqVcpu() = default;
    virtual unsigned index() const = 0;

    // From the last exit (kvm_run): KVM would take an injected interrupt now
    // (ready_for_interrupt_injection), RFLAGS.IF, CR8, IA32_APIC_BASE.
    virtual bool ready_for_interrupt() const = 0;
    virtual bool interrupts_enabled() const = 0;
    virtual uint8_t exit_cr8() const = 0;
    virtual uint64_t exit_apic_base() const = 0;

    // For the next entry.
    virtual void set_cr8(uint8_t value) = 0;
    virtual void request_interrupt_window(bool on) = 0;
    virtual bool interrupt_window_requested() const = 0;
    // KVM_INTERRUPT. False when KVM still holds an undelivered vector
    // (EEXIST, split mode); throws on other failures.
    virtual bool inject_interrupt(uint8_t vector) = 0;
    virtual void inject_nmi() = 0;

    // Out of KVM_RUN, from any thread.
    virtual void kick() = 0;

    // The CPU's INIT (registers to their reset values; IA32_APIC_BASE set
    // to `apic_base`), its start-up at a SIPI vector (real mode at
    // vector << 12, from the INIT state), and IA32_APIC_BASE alone.
    virtual void reset_to_init_state(uint64_t apic_base) = 0;
    virtual void start_at_sipi(uint8_t vector, uint64_t apic_base) = 0;
    virtual void set_apic_base(uint64_t apic_base) = 0;

    // The guest's time stamp counter now, and its rate (0: unknown).
    virtual uint64_t guest_tsc() = 0;
    virtual uint32_t tsc_khz() const = 0;
};

}  // namespace kvmini
