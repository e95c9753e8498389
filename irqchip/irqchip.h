// The one interface between the machine and interrupt delivery, whatever the
// mode (kernel, split, user). Devices never see it: they hold IrqLines and
// MsiSenders, which the IrqRouter turns into set_gsi_level()/send_msi() here.
//
// The vCPU loop asks the irqchip, in every mode, what to do at each step:
//   before_run()  before each KVM_RUN: inject a deliverable interrupt or ask
//                 for an interrupt window (no-op where KVM's LAPIC does it);
//   on_halt()     the guest executed HLT and KVM left it to us (user mode):
//                 wait until the vCPU has something to run;
//   on_eoi()      KVM reported an EOI for a vector (split: level-triggered
//                 IOAPIC EOIs, KVM_EXIT_IOAPIC_EOI).
// So no mode needs a special case in the vCPU loop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "irqchip/irq_line.h"

namespace kvmini {

class Vm;
class Vcpu;
class Bus;

enum class IrqChipMode { kKernel, kSplit, kUser };
std::string to_string(IrqChipMode mode);

enum class PitPolicy;  // irqchip/pit_8254.h

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
};

class IrqChip {
public:
    virtual ~IrqChip() = default;
    virtual std::string mode_name() const = 0;

    // Set-up, in this order: after the VM exists and before any vCPU does;
    // then per vCPU once created; then once all devices' buses exist.
    virtual void create(Vm& vm) = 0;
    virtual void attach_vcpu(Vcpu& /*vcpu*/) {}
    virtual void attach_buses(Bus& /*pio*/, Bus& /*mmio*/) {}

    // Inputs, from the IrqRouter (any thread).
    virtual void set_gsi_level(uint32_t gsi, bool level) = 0;
    virtual void send_msi(const MsiMessage& msg) = 0;

    // vCPU-loop hooks, called on that vCPU's thread.
    virtual void before_run(Vcpu& /*vcpu*/) {}
    // Returns false if the vCPU should stop (the VM is shutting down).
    virtual bool on_halt(Vcpu& /*vcpu*/) { return true; }
    virtual void on_eoi(Vcpu& /*vcpu*/, uint8_t /*vector*/) {}
    // The interrupt window the vCPU asked for opened (KVM_EXIT_IRQ_WINDOW_OPEN).
    virtual void on_interrupt_window(Vcpu& /*vcpu*/) {}
    // The VM is stopping: wake anything waiting in on_halt().
    virtual void shutdown() {}

    virtual IrqChipStats stats() const = 0;
};

// The backend for a mode. Throws Error for a mode that is not built yet.
std::unique_ptr<IrqChip> make_irqchip(IrqChipMode mode, const IrqChipOptions& options);

}  // namespace kvmini
