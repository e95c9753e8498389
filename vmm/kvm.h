// RAII owners of KVM's file descriptors: /dev/kvm (Kvm), a VM (Vm) and a vCPU
// with its kvm_run mapping (Vcpu). Every failing ioctl throws Error naming the
// ioctl and the errno text. Only vmm/ and the irqchip backends include this.
#pragma once

#include <linux/kvm.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "irqchip/irq_vcpu.h"
#include "vmm/unique_fd.h"

namespace kvmini {

// ioctl(fd, request, arg) that throws Error("NAME: strerror") on failure.
int checked_ioctl(int fd, unsigned long request, unsigned long arg, const char* name);
#define KVM_IOCTL(fd, req, arg) ::kvmini::checked_ioctl((fd), (req), (unsigned long)(arg), #req)

class Kvm {
public:
    // Opens the KVM device (normally /dev/kvm) and checks the API version.
    // Errors say what to do: no such device (KVM module not loaded / not a
    // KVM host), permission denied (join the kvm group or fix the mode).
    explicit Kvm(const std::string& path = "/dev/kvm");
    int fd() const { return fd_.get(); }

    int check_extension(long cap) const;
    // Throws Error("KVM capability NAME is not supported by this host's KVM").
    void require(long cap, const char* name) const;
    std::vector<kvm_cpuid_entry2> supported_cpuid() const;
    int vcpu_mmap_size() const { return vcpu_mmap_size_; }

private:
    UniqueFd fd_;
    int vcpu_mmap_size_ = 0;
};
#define KVM_REQUIRE(kvm, cap) (kvm).require((cap), #cap)

class Vm {
public:
    explicit Vm(const Kvm& kvm);
    int fd() const { return fd_.get(); }
    const Kvm& kvm() const { return kvm_; }
    void set_memory_region(uint32_t slot, uint64_t guest_addr, uint64_t size, void* host);

private:
    const Kvm& kvm_;
    UniqueFd fd_;
};

// A vCPU: its fd and kvm_run mapping, and what the irqchip backends may do
// with it (IrqVcpu).
class Vcpu : public IrqVcpu {
public:
    Vcpu(Vm& vm, unsigned index);
    ~Vcpu() override;
    Vcpu(const Vcpu&) = delete;
    Vcpu& operator=(const Vcpu&) = delete;

    unsigned index() const override { return index_; }
    int fd() const { return fd_.get(); }
    kvm_run* run() const { return run_; }
    Vm& vm() const { return vm_; }

    kvm_regs regs() const;
    void set_regs(const kvm_regs& regs);
    kvm_sregs sregs() const;
    void set_sregs(const kvm_sregs& sregs);

    // The thread that runs this vCPU registers itself here; kick() makes it
    // leave KVM_RUN (immediate_exit + a signal), from any thread.
    void bind_to_current_thread();
    void kick() override;
    // Installs the (empty) handler of the kick signal; once per process.
    static void install_kick_signal();

    // IrqVcpu.
    bool ready_for_interrupt() const override { return run_->ready_for_interrupt_injection; }
    bool interrupts_enabled() const override { return run_->if_flag; }
    uint8_t exit_cr8() const override { return static_cast<uint8_t>(run_->cr8 & 0xf); }
    uint64_t exit_apic_base() const override { return run_->apic_base; }
    void set_cr8(uint8_t value) override { run_->cr8 = value; }
    void request_interrupt_window(bool on) override { run_->request_interrupt_window = on ? 1 : 0; }
    bool interrupt_window_requested() const override { return run_->request_interrupt_window; }
    bool inject_interrupt(uint8_t vector) override;
    void inject_nmi() override;
    void reset_to_init_state(uint64_t apic_base) override;
    void start_at_sipi(uint8_t vector, uint64_t apic_base) override;
    void set_apic_base(uint64_t apic_base) override;
    uint64_t guest_tsc() override;
    uint32_t tsc_khz() const override { return tsc_khz_; }

private:
    Vm& vm_;
    unsigned index_;
    UniqueFd fd_;
    kvm_run* run_ = nullptr;
    size_t run_size_ = 0;
    std::atomic<bool> bound_{false};
    pthread_t thread_{};
    // KVM's state right after KVM_CREATE_VCPU is the CPU's reset state: INIT
    // and SIPI start from it.
    kvm_regs reset_regs_{};
    kvm_sregs reset_sregs_{};
    uint32_t tsc_khz_ = 0;
};

}  // namespace kvmini
