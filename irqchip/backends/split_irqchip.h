// Split mode: the LAPICs stay in KVM (KVM_CAP_SPLIT_IRQCHIP); the 8259A pair,
// the IOAPIC and the PIT are kvmini's (PcChipset).
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
//  - the PIT counts from a timer thread and raises GSI 0 (PcChipset).
#pragma once

#include <array>
#include <atomic>
#include <mutex>
#include <optional>
#include <vector>

#include "irqchip/irqchip.h"
#include "irqchip/backends/pc_chipset.h"

namespace kvmini {

class SplitIrqChip : public IrqChip {
public:
    explicit SplitIrqChip(PitPolicy pit_policy);

    std::string mode_name() const override { return "split"; }
    void create(Vm& vm) override;
    void attach_vcpu(IrqVcpu& vcpu) override;
    void attach_buses(Bus& pio, Bus& mmio) override;
    void set_gsi_level(uint32_t gsi, bool level) override { chipset_.set_gsi_level(gsi, level); }
    void send_msi(const MsiMessage& msg) override;
    bool before_run(IrqVcpu& vcpu) override;
    void on_eoi(IrqVcpu& vcpu, uint8_t vector) override;
    IrqChipStats stats() const override;

private:
    void on_pic_output(bool level);
    // Mirrors the IOAPIC's redirection entries into KVM's reserved routes.
    void sync_routes();

    int vm_fd_ = -1;
    std::vector<IrqVcpu*> vcpus_;
    std::mutex routes_mutex_;
    std::array<std::optional<MsiMessage>, gsi::kIoapicPins> routes_{};
    bool routes_installed_ = false;
    std::atomic<uint64_t> msis_{0}, injections_{0}, eois_{0}, route_updates_{0}, undeliverable_{0};
    PcChipset chipset_;  // last: its timer thread stops before the rest goes
};

}  // namespace kvmini
