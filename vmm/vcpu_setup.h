// Puts a freshly created vCPU into the state the loaders expect: CPUID, MSRs,
// FPU, the LAPIC's LINT0/LINT1 wiring (virtual-wire mode, as a PC BIOS leaves
// it), and for the boot CPU the registers of a CpuEntryState.
#pragma once

#include <linux/kvm.h>

#include <vector>

#include "vmm/boot/entry_state.h"

namespace kvmini {

class Vcpu;

void set_cpuid(Vcpu& vcpu, const std::vector<kvm_cpuid_entry2>& entries);
void init_msrs(Vcpu& vcpu);
void init_fpu(Vcpu& vcpu);
// Only with an in-kernel LAPIC (kernel and split modes).
void init_lapic_virtual_wire(Vcpu& vcpu);
void set_entry_state(Vcpu& vcpu, const CpuEntryState& entry);

// KVM segment state for a selector of the boot GDT, decoded from the very
// descriptor the loaders write (vmm/boot/x86_boot_setup.h).
kvm_segment boot_segment(uint16_t selector);

}  // namespace kvmini
