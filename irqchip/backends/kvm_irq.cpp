#include "irqchip/backends/kvm_irq.h"

#include <span>

#include "vmm/kvm.h"
#include "vmm/kvm_list.h"

namespace kvmini::kvm_irq {

bool signal_msi(int vm_fd, const MsiMessage& msg)
{
    kvm_msi msi{};
    msi.address_lo = static_cast<uint32_t>(msg.address);
    msi.address_hi = static_cast<uint32_t>(msg.address >> 32);
    msi.data = msg.data;
    return KVM_IOCTL(vm_fd, KVM_SIGNAL_MSI, &msi) > 0;
}

void set_gsi_routing(int vm_fd, const std::vector<kvm_irq_routing_entry>& entries)
{
    KvmList<kvm_irq_routing_entry> routing{std::span<const kvm_irq_routing_entry>(entries)};
    checked_ioctl(vm_fd, kvm_ioctl::kSetGsiRouting, reinterpret_cast<unsigned long>(routing.data()),
                  "KVM_SET_GSI_ROUTING");
}

}  // namespace kvmini::kvm_irq
