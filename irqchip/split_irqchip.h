// Split mode: the LAPICs stay in KVM (KVM_CAP_SPLIT_IRQCHIP); the 8259A pair,
// the IOAPIC and the PIT are kvmini's models.
//
// The path of an interrupt:
//  - a GSI level goes to the PIC input and the IOAPIC pin (gsi_layout.h);
//  - the IOAPIC's messages go to KVM's LAPICs as MSIs (KVM_SIGNAL_MSI). Each
//    unmasked redirection entry is also mirrored into KVM's reserved IOAPIC
//    routes, so that KVM knows which vectors are level-triggered and reports
//    their EOIs (KVM_EXIT_IOAPIC_EOI -> on_eoi -> Ioapic::eoi);
//  - the PIC's INT output reaches the boot vCPU as an ExtINT: before_run()
//    injects the acknowledged vector with KVM_INTERRUPT when KVM says the vCPU
//    can take it, or asks for an interrupt window;
//  - the PIT counts from a timer thread (PitTimer) and raises GSI 0. With the
//    reinject policy each tick waits for the previous one to be taken: the
//    PIC's EOI of IRQ 0, or, through the IOAPIC, its delivery (KVM reports
//    EOIs of level-triggered vectors only).
#pragma once

#include <array>
#include <functional>
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "irqchip/ioapic.h"
#include "irqchip/irqchip.h"
#include "irqchip/pic_8259.h"
#include "irqchip/pit_8254.h"

namespace kvmini {

class PitTimer;

class SplitIrqChip : public IrqChip {
public:
    explicit SplitIrqChip(PitPolicy pit_policy);
    ~SplitIrqChip() override;

    std::string mode_name() const override { return "split"; }
    void create(Vm& vm) override;
    void attach_vcpu(Vcpu& vcpu) override;
    void attach_buses(Bus& pio, Bus& mmio) override;
    void set_gsi_level(uint32_t gsi, bool level) override;
    void send_msi(const MsiMessage& msg) override;
    void before_run(Vcpu& vcpu) override;
    void on_eoi(Vcpu& vcpu, uint8_t vector) override;
    void shutdown() override;
    IrqChipStats stats() const override;

private:
    class ObservedRegisters;  // a model's registers, with a hook after guest writes

    void deliver(const IoapicDelivery& d);
    void on_pit_output(bool level);
    bool timer_goes_to_pic() const;
    void release_timer_tick_if_pic_gone();
    void on_pic_output(bool level);
    void on_pic_eoi(unsigned irq);
    // Mirrors the IOAPIC's redirection entries into KVM's reserved routes.
    void sync_routes();

    int vm_fd_ = -1;
    PitPolicy pit_policy_;
    Pic8259Pair pic_;
    Ioapic ioapic_;
    Pit8254 pit_;
    std::vector<std::unique_ptr<ObservedRegisters>> observed_;
    std::atomic<bool> tick_awaits_pic_eoi_{false};
    std::mutex shutdown_mutex_;
    std::unique_ptr<PitTimer> pit_timer_;
    std::vector<Vcpu*> vcpus_;

    std::mutex routes_mutex_;
    std::array<std::optional<MsiMessage>, gsi::kIoapicPins> routes_{};
    bool routes_installed_ = false;

    std::atomic<uint64_t> raises_{0}, msis_{0}, injections_{0}, eois_{0}, route_updates_{0};
};

}  // namespace kvmini
