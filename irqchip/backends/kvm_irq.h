// The interrupt ioctls the KVM-backed irqchip modes share (kernel, split).
// Delivery never throws: these run on device, timer and vCPU threads alike.
// Only irqchip backends use these; devices and models never do.
#pragma once

#include <linux/kvm.h>

#include <vector>

#include "devices/irq_line.h"

namespace kvmini::kvm_irq {

// KVM_SIGNAL_MSI. Returns false when no LAPIC took the message: masked, or
// refused (KVM fails with EPERM when a lowest-priority message finds no
// enabled APIC). Never throws: whatever the guest programmed, a message that
// cannot be delivered is dropped, as on the APIC bus; the caller counts it.
// Any other failure is logged once per errno.
bool signal_msi(int vm_fd, const MsiMessage& msg);

// KVM_IRQ_LINE, with the same rule: false (logged once per errno) instead
// of throwing.
bool set_irq_line(int vm_fd, uint32_t gsi, bool level);

// KVM_SET_GSI_ROUTING: replaces the whole routing table.
void set_gsi_routing(int vm_fd, const std::vector<kvm_irq_routing_entry>& entries);

}  // namespace kvmini::kvm_irq
