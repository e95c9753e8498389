// Kernel mode: KVM's own PIC pair, IOAPIC, LAPICs (KVM_CREATE_IRQCHIP) and PIT
// (KVM_CREATE_PIT2). kvmini only tells KVM how GSIs are wired (a routing
// table from irqchip/gsi_layout.h) and sets line levels; the vCPU-loop hooks
// are no-ops because KVM injects, halts and wakes vCPUs itself.
#pragma once

#include <atomic>

#include "irqchip/irqchip.h"

namespace kvmini {

class KernelIrqChip : public IrqChip {
public:
    std::string mode_name() const override { return "kernel"; }
    void create(Vm& vm) override;
    void set_gsi_level(uint32_t gsi, bool level) override;
    void send_msi(const MsiMessage& msg) override;
    IrqChipStats stats() const override;

private:
    int vm_fd_ = -1;
    std::atomic<uint64_t> raises_{0}, msis_{0}, undeliverable_{0};
};

}  // namespace kvmini
