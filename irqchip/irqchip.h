// The one interface between the machine and interrupt delivery, whatever the
// mode (kernel, split, user). Devices never see it: they hold IrqLines and
// MsiSenders, which the IrqRouter turns into set_gsi_level()/send_msi() here.
//
// The vCPU loop asks the irqchip, in every mode, what to do at each step:
//   before_run()  before each KVM_RUN: inject a deliverable interrupt or ask
//                 for an interrupt window; wait while the vCPU may not run
//                 (halted, or an AP waiting for its start-up IPI in user
//                 mode). Returns false when the vCPU must not enter the
//                 guest now (it was kicked while waiting): the loop then
//                 checks whether the machine is stopping and asks again;
//   on_halt()     the guest executed HLT and KVM left it to us (user mode);
//   on_eoi()      KVM reported an EOI for a vector (split: level-triggered
//                 IOAPIC EOIs, KVM_EXIT_IOAPIC_EOI);
//   handle_mmio() / read_msr() / write_msr(): registers the irqchip itself
//                 answers for a vCPU (user mode: the local APIC's page and
//                 its MSRs), before the MMIO bus sees the access;
//   kick()        another thread wants the vCPU to look again (VmControl on
//                 stop): leaves KVM_RUN and any wait in before_run().
// So no mode needs a special case in the vCPU loop.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "devices/irq_line.h"
#include "irqchip/irq_vcpu.h"

namespace kvmini {

class Vm;
class Bus;

enum class IrqChipMode { kKernel, kSplit, kUser };
std::string to_string(IrqChipMode mode);

enum class PitPolicy;  // irqchip/models/pit_8254.h

// What the modes that emulate the PIT need to know.
struct IrqChipOptions {
    PitPolicy pit_policy;
};

// Counted where the events happen, read in one place (the mode comparison).
struct IrqChipStats {
    uint64_t gsi_raises = 0;   // a GSI went from low to high
    uint64_t msis = 0;         // MSI messages sent
    uint64_t injections = 0;   // interrupts kvmini injected itself (KVM_INTERRUPT)
    uint64_t eois = 0;         // EOIs that reached kvmini
    uint64_t undeliverable = 0;  // messages no LAPIC took (masked or refused): dropped, as on the bus
    std::vector<std::string> details;  // a backend's own lines (per vCPU, per model)
};

class IrqChip {
public:
    virtual ~IrqChip() = default;
    virtual std::string mode_name() const = 0;

    // Set-up, in this order: after the VM exists and before any vCPU does;
    // then per vCPU once created; then once all devices' buses exist.
    virtual void create(Vm& vm) = 0;
    virtual void attach_vcpu(IrqVcpu& /*vcpu*/) {}
    virtual void attach_buses(Bus& /*pio*/, Bus& /*mmio*/) {}
    // What this mode's interrupt controllers can do, in the CPUID each vCPU
    // sees (e.g. user mode hides KVM's paravirt features that need KVM's LAPIC).
    virtual void filter_cpuid(std::vector<kvm_cpuid_entry2>& /*entries*/) const {}

    // Inputs, from the IrqRouter (any thread).
    virtual void set_gsi_level(uint32_t gsi, bool level) = 0;
    virtual void send_msi(const MsiMessage& msg) = 0;

    // vCPU-loop hooks, called on that vCPU's thread.
    virtual bool before_run(IrqVcpu& /*vcpu*/) { return true; }
    virtual void on_halt(IrqVcpu& /*vcpu*/) {}
    virtual void on_eoi(IrqVcpu& /*vcpu*/, uint8_t /*vector*/) {}
    // The interrupt window the vCPU asked for opened (KVM_EXIT_IRQ_WINDOW_OPEN).
    virtual void on_interrupt_window(IrqVcpu& /*vcpu*/) {}
    // True if the irqchip answered the access (reads fill `data`).
    virtual bool handle_mmio(IrqVcpu& /*vcpu*/, uint64_t /*addr*/, std::span<uint8_t> /*data*/, bool /*is_write*/)
    {
        return false;
    }
    // MSRs KVM hands to userspace (KVM_EXIT_X86_RDMSR/WRMSR). False: the
    // guest gets #GP.
    virtual bool read_msr(IrqVcpu& /*vcpu*/, uint32_t /*index*/, uint64_t& /*value*/) { return false; }
    virtual bool write_msr(IrqVcpu& /*vcpu*/, uint32_t /*index*/, uint64_t /*value*/) { return false; }
    // Make `vcpu` look again (any thread): out of KVM_RUN and out of a wait
    // in before_run(). VmControl uses it to stop the machine.
    virtual void kick(IrqVcpu& vcpu) { vcpu.kick(); }

    virtual IrqChipStats stats() const = 0;
};

// The backend for a mode. Throws Error for a mode that is not built yet.
std::unique_ptr<IrqChip> make_irqchip(IrqChipMode mode, const IrqChipOptions& options);

}  // namespace kvmini
