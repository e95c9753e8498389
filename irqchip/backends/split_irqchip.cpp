#include "irqchip/backends/split_irqchip.h"

#include <spdlog/spdlog.h>

#include "irqchip/gsi_layout.h"
#include "irqchip/backends/kvm_irq.h"
#include "vmm/error.h"
#include "vmm/kvm.h"

namespace kvmini {

namespace {
// The boot vCPU, whose LINT0 takes the PIC's ExtINT (virtual wire mode).
constexpr unsigned kExtIntVcpu = 0;
}  // namespace

SplitIrqChip::SplitIrqChip(PitPolicy pit_policy)
    : chipset_(pit_policy, PcChipset::Outputs{
                               .deliver = [this](const IoapicDelivery& d) { send_msi(to_msi(d)); },
                               .pic_output = [this](bool level) { on_pic_output(level); },
                               .ioapic_written = [this] { sync_routes(); },
                           })
{
}

void SplitIrqChip::create(Vm& vm)
{
    const Kvm& kvm = vm.kvm();
    KVM_REQUIRE(kvm, KVM_CAP_SPLIT_IRQCHIP);
    KVM_REQUIRE(kvm, KVM_CAP_SIGNAL_MSI);
    KVM_REQUIRE(kvm, KVM_CAP_IRQ_ROUTING);
    vm_fd_ = vm.fd();
    kvm_enable_cap cap{};
    cap.cap = KVM_CAP_SPLIT_IRQCHIP;
    cap.args[0] = gsi::kIoapicPins;  // routes reserved for the IOAPIC's pins
    KVM_IOCTL(vm_fd_, KVM_ENABLE_CAP, &cap);
    spdlog::debug("irqchip: split: LAPICs in KVM; PIC, IOAPIC and PIT ({}) in kvmini",
                  chipset_.pit_policy() == PitPolicy::kReinject ? "reinject" : "discard");
}

void SplitIrqChip::attach_vcpu(IrqVcpu& vcpu) { vcpus_.push_back(&vcpu); }

void SplitIrqChip::attach_buses(Bus& pio, Bus& mmio) { chipset_.attach(pio, mmio); }

void SplitIrqChip::send_msi(const MsiMessage& msg)
{
    msis_.fetch_add(1, std::memory_order_relaxed);
    if (!kvm_irq::signal_msi(vm_fd_, msg)) undeliverable_.fetch_add(1, std::memory_order_relaxed);
}

void SplitIrqChip::sync_routes()
{
    // Read the IOAPIC under the routes' lock: two vCPUs writing the IOAPIC
    // at once must not install the older table last.
    std::lock_guard lock(routes_mutex_);
    std::array<std::optional<MsiMessage>, gsi::kIoapicPins> wanted{};
    for (unsigned pin = 0; pin < gsi::kIoapicPins; ++pin) {
        auto m = chipset_.ioapic().programmed_message(pin);
        if (m && m->delivery_mode != IoapicDeliveryMode::kExtInt) wanted[pin] = to_msi(*m);
    }
    if (routes_installed_ && wanted == routes_) return;
    std::vector<kvm_irq_routing_entry> entries;
    for (unsigned pin = 0; pin < gsi::kIoapicPins; ++pin) {
        if (!wanted[pin]) continue;
        kvm_irq_routing_entry e{};
        e.gsi = pin;
        e.type = KVM_IRQ_ROUTING_MSI;
        e.u.msi.address_lo = static_cast<uint32_t>(wanted[pin]->address);
        e.u.msi.address_hi = static_cast<uint32_t>(wanted[pin]->address >> 32);
        e.u.msi.data = wanted[pin]->data;
        entries.push_back(e);
    }
    kvm_irq::set_gsi_routing(vm_fd_, entries);
    routes_ = wanted;
    routes_installed_ = true;
    if (spdlog::should_log(spdlog::level::debug)) {
        std::string text;
        for (const auto& e : entries) text += fmt::format(" {}:{:#x}/{:#x}", e.gsi, e.u.msi.address_lo, e.u.msi.data);
        spdlog::debug("irqchip: split: IOAPIC routes{}", text.empty() ? " (none)" : text);
    }
    route_updates_.fetch_add(1, std::memory_order_relaxed);
}

void SplitIrqChip::on_pic_output(bool level)
{
    // A halted boot vCPU sleeps in KVM, which does not see our PIC: wake it
    // so that before_run() can inject.
    if (level && kExtIntVcpu < vcpus_.size()) vcpus_[kExtIntVcpu]->kick();
}

bool SplitIrqChip::before_run(IrqVcpu& vcpu)
{
    if (vcpu.index() != kExtIntVcpu) return true;
    Pic8259Pair& pic = chipset_.pic();
    if (!pic.output()) {
        vcpu.request_interrupt_window(false);
        return true;
    }
    if (!vcpu.ready_for_interrupt()) {
        vcpu.request_interrupt_window(true);
        return true;
    }
    if (vcpu.inject_interrupt(pic.acknowledge())) injections_.fetch_add(1, std::memory_order_relaxed);
    vcpu.request_interrupt_window(pic.output());
    return true;
}

void SplitIrqChip::on_eoi(IrqVcpu&, uint8_t vector)
{
    eois_.fetch_add(1, std::memory_order_relaxed);
    chipset_.ioapic_eoi(vector);
}

IrqChipStats SplitIrqChip::stats() const
{
    IrqChipStats s;
    s.gsi_raises = chipset_.gsi_raises();
    s.msis = msis_.load();
    s.injections = injections_.load();
    s.eois = eois_.load();
    s.undeliverable = undeliverable_.load();
    return s;
}

}  // namespace kvmini
