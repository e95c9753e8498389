// The run loop of one vCPU thread: KVM_RUN, then each exit becomes a call on
// the port or MMIO bus, or on the irqchip (halt, EOI, interrupt window), or
// ends the machine through VmControl. The same loop serves every irqchip mode.
#pragma once

#include <linux/kvm.h>

#include <string>

namespace kvmini {

class Bus;
class GuestMemory;
class IrqChip;
class Vcpu;
class VmControl;
struct ExitStats;

class VcpuLoop {
public:
    VcpuLoop(Vcpu& vcpu, Bus& pio, Bus& mmio, IrqChip& irqchip, GuestMemory& memory, VmControl& control,
             ExitStats& stats)
        : vcpu_(vcpu), pio_(pio), mmio_(mmio), irqchip_(irqchip), memory_(memory), control_(control), stats_(stats)
    {
    }

    // Runs until the machine stops. Never throws: a failure stops the machine
    // with a non-zero status and the reason.
    void run();

private:
    void run_until_stopped();
    void handle_io(kvm_run& run);
    void handle_mmio(kvm_run& run);
    void handle_system_event(kvm_run& run);
    // KVM_EXIT_INTERNAL_ERROR: finishes INT3, INT n and FWAIT for KVM's
    // emulator (complete_instruction), or stops the machine with a report.
    void handle_internal_error(kvm_run& run);
    bool complete_instruction(kvm_regs& regs, const kvm_sregs& sregs, const uint8_t* insn, size_t len);
    // Up to 15 bytes at the guest's CS:RIP (fewer where memory ends).
    std::string instruction_bytes(const kvm_regs& regs, const kvm_sregs& sregs, uint8_t* out, size_t& len);

    Vcpu& vcpu_;
    Bus& pio_;
    Bus& mmio_;
    IrqChip& irqchip_;
    GuestMemory& memory_;
    VmControl& control_;
    ExitStats& stats_;
};

// A readable dump of a vCPU's registers, for fatal reports.
std::string format_registers(const kvm_regs& regs, const kvm_sregs& sregs);

}  // namespace kvmini
