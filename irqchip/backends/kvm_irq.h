// The interrupt ioctls the KVM-backed irqchip modes share (kernel, split).
// Only irqchip backends use these; devices and models never do.
#pragma once

#include <linux/kvm.h>

#include <vector>

#include "devices/irq_line.h"

namespace kvmini::kvm_irq {

// KVM_SIGNAL_MSI. Returns false when no LAPIC took the message (the guest
// masked it): not an error.
bool signal_msi(int vm_fd, const MsiMessage& msg);

// KVM_SET_GSI_ROUTING: replaces the whole routing table.
void set_gsi_routing(int vm_fd, const std::vector<kvm_irq_routing_entry>& entries);

}  // namespace kvmini::kvm_irq
