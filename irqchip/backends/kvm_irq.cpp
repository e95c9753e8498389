#include "irqchip/backends/kvm_irq.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <span>

#include <spdlog/spdlog.h>

#include "vmm/kvm.h"
#include "vmm/kvm_list.h"

namespace kvmini::kvm_irq {

namespace {
// The first failure of each errno is worth a line; a guest can repeat it
// millions of times.
void log_once(const char* what, int err)
{
    static std::mutex mutex;
    static std::set<int> seen;
    std::lock_guard lock(mutex);
    if (seen.insert(err).second) spdlog::warn("{}: {} (interrupt dropped; further ones counted, not logged)", what,
                                              std::strerror(err));
}
}  // namespace

bool signal_msi(int vm_fd, const MsiMessage& msg)
{
    kvm_msi msi{};
    msi.address_lo = static_cast<uint32_t>(msg.address);
    msi.address_hi = static_cast<uint32_t>(msg.address >> 32);
    msi.data = msg.data;
    int r;
    do {
        r = ::ioctl(vm_fd, KVM_SIGNAL_MSI, &msi);
    } while (r < 0 && errno == EINTR);
    if (r > 0) return true;
    if (r < 0 && errno != EPERM) log_once("KVM_SIGNAL_MSI", errno);
    return false;
}

bool set_irq_line(int vm_fd, uint32_t gsi, bool level)
{
    kvm_irq_level irq{};
    irq.irq = gsi;
    irq.level = level ? 1 : 0;
    int r;
    do {
        r = ::ioctl(vm_fd, KVM_IRQ_LINE, &irq);
    } while (r < 0 && errno == EINTR);
    if (r == 0) return true;
    log_once("KVM_IRQ_LINE", errno);
    return false;
}

void set_gsi_routing(int vm_fd, const std::vector<kvm_irq_routing_entry>& entries)
{
    KvmList<kvm_irq_routing_entry> routing{std::span<const kvm_irq_routing_entry>(entries)};
    checked_ioctl(vm_fd, kvm_ioctl::kSetGsiRouting, reinterpret_cast<unsigned long>(routing.data()),
                  "KVM_SET_GSI_ROUTING");
}

}  // namespace kvmini::kvm_irq
