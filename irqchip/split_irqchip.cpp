#include "irqchip/split_irqchip.h"

#include <sys/ioctl.h>

#include <spdlog/spdlog.h>

#include "devices/bus.h"
#include "irqchip/gsi_layout.h"
#include "irqchip/kvm_irq.h"
#include "irqchip/pit_timer.h"
#include "vmm/error.h"
#include "vmm/kvm.h"
#include "vmm/memory_layout.h"

namespace kvmini {

namespace {
// The boot vCPU, whose LINT0 takes the PIC's ExtINT (virtual wire mode).
constexpr unsigned kExtIntVcpu = 0;
}  // namespace

// Forwards accesses to a model's registers and runs `after_write` once a
// guest write was handled (re-arm the PIT, re-mirror IOAPIC routes, re-check
// a tick the 8259A was to acknowledge).
class SplitIrqChip::ObservedRegisters : public BusDevice {
public:
    ObservedRegisters(BusDevice& inner, std::function<void()> after_write)
        : inner_(inner), after_write_(std::move(after_write))
    {
    }
    void read(uint64_t offset, std::span<uint8_t> data) override { inner_.read(offset, data); }
    void write(uint64_t offset, std::span<const uint8_t> data) override
    {
        inner_.write(offset, data);
        after_write_();
    }

private:
    BusDevice& inner_;
    std::function<void()> after_write_;
};

SplitIrqChip::SplitIrqChip(PitPolicy pit_policy)
    : pit_policy_(pit_policy),
      pic_([this](bool level) { on_pic_output(level); }, [this](unsigned irq) { on_pic_eoi(irq); }),
      ioapic_([this](const IoapicDelivery& d) { deliver(d); }, IoapicConfig{}),
      pit_([this](bool level) { on_pit_output(level); }, pit_policy)
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
    auto observe = [this](BusDevice& inner, std::function<void()> after_write) -> BusDevice& {
        observed_.push_back(std::make_unique<ObservedRegisters>(inner, std::move(after_write)));
        return *observed_.back();
    };
    pio.add(Pic8259Pair::kMasterBase, Pic8259Pair::kPortsPerChip,
            observe(pic_.master_device(), [this] { release_timer_tick_if_pic_gone(); }), "8259A master");
    pio.add(Pic8259Pair::kSlaveBase, Pic8259Pair::kPortsPerChip, pic_.slave_device(), "8259A slave");
    pio.add(Pic8259Pair::kElcrBase, Pic8259Pair::kPortsPerChip, pic_.elcr_device(), "8259A ELCR");
    pio.add(Pit8254::kBase, Pit8254::kPorts, observe(pit_.timer_device(), [this] { pit_timer_->poke(); }), "8254 PIT");
    pio.add(Pit8254::kPortB, 1, observe(pit_.port_b_device(), [this] { pit_timer_->poke(); }),
            "port 0x61 (PIT gate 2, speaker)");
    mmio.add(layout::kIoapicBase, Ioapic::kMmioSize, observe(ioapic_, [this] {
                 sync_routes();
                 release_timer_tick_if_pic_gone();
             }),
             "IOAPIC");
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
    msis_.fetch_add(1, std::memory_order_relaxed);
    kvm_irq::signal_msi(vm_fd_, msg);
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

bool SplitIrqChip::timer_goes_to_pic() const
{
    // Through the IOAPIC when its pin is live; through the 8259A only where
    // that pin is off (masked, or handing over as ExtINT) and IRQ 0 is open.
    const auto timer_pin = gsi::ioapic_pin(gsi::kPitIrq);
    const auto message = timer_pin ? ioapic_.programmed_message(*timer_pin) : std::nullopt;
    if (message && message->delivery_mode != IoapicDeliveryMode::kExtInt) return false;
    return (pic_.imr(0) & (1u << gsi::kPitIrq)) == 0;
}

void SplitIrqChip::on_pit_output(bool level)
{
    // Reinject: the next tick waits until this one was taken. Through the
    // IOAPIC that is its delivery (KVM reports no EOI of an edge-triggered
    // vector). Through the 8259A it is its EOI of IRQ 0 (on_pic_eoi), which
    // can come before set_gsi_level() returns: decide first. A tick that met
    // only masked inputs is lost, as on the chips: counting it taken keeps
    // reinject from waiting forever.
    const bool reinject_tick = level && pit_policy_ == PitPolicy::kReinject;
    const bool via_pic = reinject_tick && timer_goes_to_pic();
    if (via_pic) tick_awaits_pic_eoi_.store(true);
    set_gsi_level(gsi::kPitIrq, level);
    if (reinject_tick && !via_pic) pit_.ack_irq();
}

void SplitIrqChip::release_timer_tick_if_pic_gone()
{
    // As KVM's PIT does on a mask change: a tick left with the 8259A when the
    // guest masked IRQ 0 there (or moved the timer to the IOAPIC) will never
    // be acknowledged.
    if (tick_awaits_pic_eoi_.load() && !timer_goes_to_pic() && tick_awaits_pic_eoi_.exchange(false)) pit_.ack_irq();
}

void SplitIrqChip::sync_routes()
{
    std::array<std::optional<MsiMessage>, gsi::kIoapicPins> wanted{};
    for (unsigned pin = 0; pin < gsi::kIoapicPins; ++pin) {
        auto m = ioapic_.programmed_message(pin);
        if (m && m->delivery_mode != IoapicDeliveryMode::kExtInt) wanted[pin] = to_msi(*m);
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

void SplitIrqChip::on_pic_eoi(unsigned irq)
{
    if (irq == gsi::kPitIrq && tick_awaits_pic_eoi_.exchange(false)) pit_.ack_irq();
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
