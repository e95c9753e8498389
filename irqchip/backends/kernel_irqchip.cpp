#include "irqchip/backends/kernel_irqchip.h"

#include <sys/ioctl.h>

#include <vector>

#include <spdlog/spdlog.h>

#include "irqchip/gsi_layout.h"
#include "irqchip/backends/kvm_irq.h"
#include "vmm/error.h"
#include "vmm/kvm.h"

namespace kvmini {

namespace {

// KVM_SET_GSI_ROUTING: GSI n drives 8259A input n (master 0..7, slave 8..15)
// and IOAPIC pin gsi::ioapic_pin(n); GSIs 16..23 reach the IOAPIC only.
std::vector<kvm_irq_routing_entry> pc_routing()
{
    std::vector<kvm_irq_routing_entry> entries;
    for (uint32_t g = 0; g < gsi::kIoapicPins; ++g) {
        if (auto pin = gsi::pic_pin(g)) {
            kvm_irq_routing_entry e{};
            e.gsi = g;
            e.type = KVM_IRQ_ROUTING_IRQCHIP;
            e.u.irqchip.irqchip = *pin < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
            e.u.irqchip.pin = *pin % 8;
            entries.push_back(e);
        }
        if (auto pin = gsi::ioapic_pin(g)) {
            kvm_irq_routing_entry e{};
            e.gsi = g;
            e.type = KVM_IRQ_ROUTING_IRQCHIP;
            e.u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
            e.u.irqchip.pin = *pin;
            entries.push_back(e);
        }
    }
    return entries;
}

}  // namespace

void KernelIrqChip::create(Vm& vm)
{
    const Kvm& kvm = vm.kvm();
    KVM_REQUIRE(kvm, KVM_CAP_IRQCHIP);
    KVM_REQUIRE(kvm, KVM_CAP_PIT2);
    KVM_REQUIRE(kvm, KVM_CAP_IRQ_ROUTING);
    KVM_REQUIRE(kvm, KVM_CAP_SIGNAL_MSI);
    vm_fd_ = vm.fd();
    KVM_IOCTL(vm_fd_, KVM_CREATE_IRQCHIP, 0);

    const auto entries = pc_routing();
    kvm_irq::set_gsi_routing(vm_fd_, entries);

    kvm_pit_config pit{};
    pit.flags = KVM_PIT_SPEAKER_DUMMY;  // KVM answers port 0x61 itself
    KVM_IOCTL(vm_fd_, KVM_CREATE_PIT2, &pit);
    spdlog::debug("irqchip: in-kernel PIC, IOAPIC, LAPIC and PIT; {} GSI routes", entries.size());
}

void KernelIrqChip::set_gsi_level(uint32_t gsi, bool level)
{
    if (level) raises_.fetch_add(1, std::memory_order_relaxed);
    if (!kvm_irq::set_irq_line(vm_fd_, gsi, level)) undeliverable_.fetch_add(1, std::memory_order_relaxed);
}

void KernelIrqChip::send_msi(const MsiMessage& msg)
{
    msis_.fetch_add(1, std::memory_order_relaxed);
    if (!kvm_irq::signal_msi(vm_fd_, msg)) undeliverable_.fetch_add(1, std::memory_order_relaxed);
}

IrqChipStats KernelIrqChip::stats() const
{
    IrqChipStats s;
    s.gsi_raises = raises_.load();
    s.msis = msis_.load();
    s.undeliverable = undeliverable_.load();
    return s;
}

}  // namespace kvmini
