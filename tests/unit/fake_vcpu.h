// A vCPU for irqchip backend tests, without KVM: the test plays KVM's side
// (what the last exit said: ready, IF, CR8, IA32_APIC_BASE) and reads back
// what the backend did (injected vectors, NMIs, the interrupt-window request,
// CR8, INIT/SIPI, kicks). kick() may come from any thread; everything else
// from the thread that plays this vCPU.
#pragma once

#include <atomic>
#include <optional>
#include <vector>

#include "irqchip/irq_vcpu.h"

namespace kvmini::testing {

class FakeVcpu : public IrqVcpu {
public:
    explicit FakeVcpu(unsigned index) : index_(index) {}

    // What the last exit said; the test sets these.
    bool ready = true;
    bool if_flag = true;
    uint8_t cr8 = 0;
    uint64_t apic_base = 0;
    // KVM_INTERRUPT refuses (EEXIST) while true.
    bool refuse_injection = false;
    uint64_t tsc = 0;
    uint32_t khz = 1'000'000;  // 1 GHz: one TSC count per ns

    // What the backend did.
    std::vector<uint8_t> injected;
    unsigned nmis = 0;
    bool window = false;
    uint8_t cr8_set = 0;
    unsigned inits = 0;
    std::optional<uint8_t> started_at_sipi;
    std::atomic<unsigned> kicks{0};

    unsigned index() const override { return index_; }
    bool ready_for_interrupt() const override { return ready; }
    bool interrupts_enabled() const override { return if_flag; }
    uint8_t exit_cr8() const override { return cr8; }
    uint64_t exit_apic_base() const override { return apic_base; }
    void set_cr8(uint8_t value) override { cr8_set = value; }
    void request_interrupt_window(bool on) override { window = on; }
    bool interrupt_window_requested() const override { return window; }
    bool inject_interrupt(uint8_t vector) override
    {
        if (refuse_injection) return false;
        injected.push_back(vector);
        return true;
    }
    void inject_nmi() override { ++nmis; }
    void kick() override { kicks.fetch_add(1); }
    void reset_to_init_state(uint64_t base) override
    {
        ++inits;
        apic_base = base;
    }
    void start_at_sipi(uint8_t vector, uint64_t base) override
    {
        started_at_sipi = vector;
        apic_base = base;
    }
    void set_apic_base(uint64_t base) override { apic_base = base; }
    uint64_t guest_tsc() override { return tsc; }
    uint32_t tsc_khz() const override { return khz; }

private:
    unsigned index_;
};

}  // namespace kvmini::testing
