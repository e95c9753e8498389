#include "irqchip/split_irqchip.h"

#include <sys/ioctl.h>

#include <spdlog/spdlog.h>

#include "devices/bus.h"
#include "irqchip/gsi_layout.h"
#include "irqchip/pit_timer.h"
#include "vmm/error.h"
#include "vmm/kvm.h"
#include "vmm/kvm_list.h"
#include "vmm/memory_layout.h"

namespace kvmini {

namespace {
// MSI data bit 15: trigger mode level (Intel SDM vol. 3A 11.11.2).
constexpr uint32_t kMsiDataLevel = 1u << 15;
// The boot vCPU, whose LINT0 takes the PIC's ExtINT (virtual wire mode).
constexpr unsigned kExtIntVcpu = 0;
}  // namespace

class SplitIrqChip::IoapicWindow : public BusDevice {
public:
    explicit IoapicWindow(SplitIrqChip& chip) : chip_(chip) {}
    void read(uint64_t offset, std::span<uint8_t> data) override { chip_.ioapic_.read(offset, data); }
    void write(uint64_t offset, std::span<const uint8_t> data) override
    {
        chip_.ioapic_.write(offset, data);
        chip_.sync_routes();
    }

private:
    SplitIrqChip& chip_;
};

class SplitIrqChip::PitPorts : public BusDevice {
public:
    PitPorts(SplitIrqChip& chip, BusDevice& inner) : chip_(chip), inner_(inner) {}
    void read(uint64_t offset, std::span<uint8_t> data) override { inner_.read(offset, data); }
    void write(uint64_t offset, std::span<const uint8_t> data) override
    {
        inner_.write(offset, data);
        if (chip_.pit_timer_) chip_.pit_timer_->poke();
    }

private:
    SplitIrqChip& chip_;
    BusDevice& inner_;
};

SplitIrqChip::SplitIrqChip(PitPolicy pit_policy)
    : pit_policy_(pit_policy),
      pic_([this](bool level) { on_pic_output(level); }, [this](unsigned irq) { on_pic_eoi(irq); }),
      ioapic_([this](const IoapicDelivery& d) { deliver(d); }, IoapicConfig{}),
      pit_([this](bool level) { set_gsi_level(gsi::kPitIrq, level); }, pit_policy)
{
}

SplitIrqChip::~SplitIrqChip() { shutdown(); }

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
                  pit_policy_ == PitPolicy::kReinject ? "reinject" : "discard");
}

void SplitIrqChip::attach_vcpu(Vcpu& vcpu) { vcpus_.push_back(&vcpu); }

void SplitIrqChip::attach_buses(Bus& pio, Bus& mmio)
{
    pic_.attach(pio);
    pit_ports_ = std::make_unique<PitPorts>(*this, pit_.timer_device());
    pio.add(Pit8254::kBase, Pit8254::kPorts, *pit_ports_, "8254 PIT");
    pio.add(Pit8254::kPortB, 1, pit_.port_b_device(), "port 0x61 (PIT gate 2, speaker)");
    ioapic_window_ = std::make_unique<IoapicWindow>(*this);
    mmio.add(layout::kIoapicBase, Ioapic::kMmioSize, *ioapic_window_, "IOAPIC");
    pit_timer_ = std::make_unique<PitTimer>(pit_);
}

void SplitIrqChip::set_gsi_level(uint32_t gsi, bool level)
{
    if (level) raises_.fetch_add(1, std::memory_order_relaxed);
    if (auto pin = gsi::pic_pin(gsi)) pic_.set_irq(*pin, level);
    if (auto pin = gsi::ioapic_pin(gsi)) ioapic_.set_irq(*pin, level);
}

void SplitIrqChip::send_msi(const MsiMessage& msg)
{
    kvm_msi msi{};
    msi.address_lo = static_cast<uint32_t>(msg.address);
    msi.address_hi = static_cast<uint32_t>(msg.address >> 32);
    msi.data = msg.data;
    msis_.fetch_add(1, std::memory_order_relaxed);
    KVM_IOCTL(vm_fd_, KVM_SIGNAL_MSI, &msi);
}

void SplitIrqChip::deliver(const IoapicDelivery& d)
{
    if (d.delivery_mode == IoapicDeliveryMode::kExtInt) {
        // The pin hands the CPU over to the 8259A: its output is what counts,
        // and before_run() already follows it.
        return;
    }
    send_msi(to_msi(d));
}

void SplitIrqChip::sync_routes()
{
    std::array<std::optional<MsiMessage>, gsi::kIoapicPins> wanted{};
    const auto timer_pin = gsi::ioapic_pin(gsi::kPitIrq);
    for (unsigned pin = 0; pin < gsi::kIoapicPins; ++pin) {
        auto m = ioapic_.programmed_message(pin);
        if (!m || m->delivery_mode == IoapicDeliveryMode::kExtInt) continue;
        MsiMessage msg = to_msi(*m);
        // Reinject needs to see the timer's EOIs: KVM reports EOIs of the
        // vectors whose reserved route is level-triggered.
        if (pit_policy_ == PitPolicy::kReinject && timer_pin && pin == *timer_pin) msg.data |= kMsiDataLevel;
        wanted[pin] = msg;
    }
    std::lock_guard lock(routes_mutex_);
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
    KvmList<kvm_irq_routing_entry> routing{std::span<const kvm_irq_routing_entry>(entries)};
    checked_ioctl(vm_fd_, kvm_ioctl::kSetGsiRouting, reinterpret_cast<unsigned long>(routing.data()),
                  "KVM_SET_GSI_ROUTING");
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

void SplitIrqChip::on_pic_eoi(unsigned irq)
{
    if (irq == gsi::kPitIrq) pit_.ack_irq();
}

void SplitIrqChip::before_run(Vcpu& vcpu)
{
    if (vcpu.index() != kExtIntVcpu) return;
    kvm_run* run = vcpu.run();
    if (!pic_.output()) {
        run->request_interrupt_window = 0;
        return;
    }
    if (!run->ready_for_interrupt_injection) {
        run->request_interrupt_window = 1;
        return;
    }
    kvm_interrupt irq{};
    irq.irq = pic_.acknowledge();
    if (::ioctl(vcpu.fd(), KVM_INTERRUPT, &irq) < 0) {
        if (errno != EEXIST) throw_errno("KVM_INTERRUPT");
    } else {
        injections_.fetch_add(1, std::memory_order_relaxed);
    }
    run->request_interrupt_window = pic_.output() ? 1 : 0;
}

void SplitIrqChip::on_eoi(Vcpu&, uint8_t vector)
{
    eois_.fetch_add(1, std::memory_order_relaxed);
    if (pit_policy_ == PitPolicy::kReinject) {
        const auto timer_pin = gsi::ioapic_pin(gsi::kPitIrq);
        std::lock_guard lock(routes_mutex_);
        if (timer_pin && routes_[*timer_pin] && (routes_[*timer_pin]->data & 0xff) == vector) pit_.ack_irq();
    }
    ioapic_.eoi(vector);
}

void SplitIrqChip::shutdown()
{
    // Every vCPU thread calls this as it ends; the first one stops the timer.
    std::lock_guard lock(shutdown_mutex_);
    pit_timer_.reset();
}

IrqChipStats SplitIrqChip::stats() const
{
    IrqChipStats s;
    s.gsi_raises = raises_.load();
    s.msis = msis_.load();
    s.injections = injections_.load();
    s.eois = eois_.load();
    return s;
}

}  // namespace kvmini
