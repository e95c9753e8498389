#include "vmm/vcpu_setup.h"

#include <cstring>
#include <memory>
#include <string>

#include "devices/le.h"
#include "irqchip/models/lapic.h"
#include "vmm/error.h"
#include "vmm/kvm.h"
#include "vmm/kvm_list.h"
#include "vmm/boot/x86_boot_setup.h"

namespace kvmini {

namespace {

// Model-specific registers (Intel SDM vol. 4; AMD APM vol. 2 for the SYSCALL MSRs).
constexpr uint32_t kMsrSysenterCs = 0x174;
constexpr uint32_t kMsrSysenterEsp = 0x175;
constexpr uint32_t kMsrSysenterEip = 0x176;
constexpr uint32_t kMsrStar = 0xc0000081;
constexpr uint32_t kMsrLstar = 0xc0000082;
constexpr uint32_t kMsrCstar = 0xc0000083;
constexpr uint32_t kMsrSyscallMask = 0xc0000084;
constexpr uint32_t kMsrKernelGsBase = 0xc0000102;
constexpr uint32_t kMsrTsc = 0x10;
constexpr uint32_t kMsrMiscEnable = 0x1a0;
constexpr uint64_t kMiscEnableFastStrings = 1;

// Control register bits (Intel SDM vol. 3A 2.5).
constexpr uint64_t kCr0Pe = 1u << 0, kCr0Mp = 1u << 1, kCr0Et = 1u << 4, kCr0Ne = 1u << 5, kCr0Pg = 1u << 31;
constexpr uint64_t kCr4Pae = 1u << 5;
constexpr uint64_t kEferLme = 1u << 8, kEferLma = 1u << 10;


}  // namespace

void set_cpuid(Vcpu& vcpu, const std::vector<kvm_cpuid_entry2>& entries)
{
    KvmList<kvm_cpuid_entry2> cpuid{std::span<const kvm_cpuid_entry2>(entries)};
    checked_ioctl(vcpu.fd(), kvm_ioctl::kSetCpuid2, reinterpret_cast<unsigned long>(cpuid.data()), "KVM_SET_CPUID2");
}

void init_msrs(Vcpu& vcpu)
{
    const std::pair<uint32_t, uint64_t> values[] = {
        {kMsrSysenterCs, 0}, {kMsrSysenterEsp, 0}, {kMsrSysenterEip, 0}, {kMsrStar, 0},
        {kMsrLstar, 0},      {kMsrCstar, 0},       {kMsrSyscallMask, 0}, {kMsrKernelGsBase, 0},
        {kMsrTsc, 0},        {kMsrMiscEnable, kMiscEnableFastStrings},
    };
    std::vector<kvm_msr_entry> entries;
    for (const auto& [index, data] : values) {
        kvm_msr_entry e{};
        e.index = index;
        e.data = data;
        entries.push_back(e);
    }
    KvmList<kvm_msr_entry> msrs{std::span<const kvm_msr_entry>(entries)};
    const int set = checked_ioctl(vcpu.fd(), kvm_ioctl::kSetMsrs, reinterpret_cast<unsigned long>(msrs.data()),
                                  "KVM_SET_MSRS");
    if (set != static_cast<int>(entries.size()))
        throw Error("KVM_SET_MSRS: KVM refused MSR " + std::to_string(values[set].first));
}

void init_fpu(Vcpu& vcpu)
{
    kvm_fpu fpu{};
    fpu.fcw = 0x37f;     // x87 default control word (FNINIT)
    fpu.mxcsr = 0x1f80;  // SSE default: all exceptions masked
    KVM_IOCTL(vcpu.fd(), KVM_SET_FPU, &fpu);
}

void init_lapic_virtual_wire(Vcpu& vcpu)
{
    kvm_lapic_state lapic{};
    KVM_IOCTL(vcpu.fd(), KVM_GET_LAPIC, &lapic);
    auto set_mode = [&](size_t reg, uint32_t mode) {
        uint8_t* r = reinterpret_cast<uint8_t*>(&lapic.regs[reg]);
        le::store32(r, (le::load32(r) & ~kApicDeliveryModeMask) | mode);
    };
    // The register layout and encodings are the LAPIC model's (Intel SDM
    // vol. 3A 11.5.1), also for KVM's LAPIC state page.
    set_mode(Lapic::kRegLvtLint0, delivery_mode_bits(ApicDeliveryMode::kExtInt));
    set_mode(Lapic::kRegLvtLint1, delivery_mode_bits(ApicDeliveryMode::kNmi));
    KVM_IOCTL(vcpu.fd(), KVM_SET_LAPIC, &lapic);
}

kvm_segment boot_segment(uint16_t selector)
{
    const boot_tables::SegmentFields f = boot_tables::segment_for_selector(selector);
    kvm_segment s{};
    s.base = f.base;
    s.limit = f.limit;
    s.selector = f.selector;
    s.type = f.type;
    s.present = f.present;
    s.dpl = f.dpl;
    s.db = f.db;
    s.s = f.s;
    s.l = f.l;
    s.g = f.g;
    s.avl = f.avl;
    return s;
}

void set_entry_state(Vcpu& vcpu, const CpuEntryState& entry)
{
    kvm_sregs sregs = vcpu.sregs();
    const bool long_mode = entry.mode == CpuEntryState::Mode::kLong64;
    sregs.cs = boot_segment(long_mode ? boot_selectors::kCode64 : boot_selectors::kCode32);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = boot_segment(boot_selectors::kData);
    sregs.gdt.base = boot_tables::kBootGdtr.base;
    sregs.gdt.limit = boot_tables::kBootGdtr.limit;
    sregs.idt.base = boot_tables::kBootIdtr.base;
    sregs.idt.limit = boot_tables::kBootIdtr.limit;
    // A task register is required to enter the guest; nothing uses it before
    // the guest loads its own.
    sregs.tr = {};
    sregs.tr.limit = 0x67;
    sregs.tr.type = 0xb;  // busy 32/64-bit TSS
    sregs.tr.present = 1;
    sregs.ldt = {};
    sregs.ldt.type = 0x2;
    sregs.ldt.present = 1;
    sregs.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne;
    sregs.cr4 = 0;
    sregs.efer = 0;
    if (long_mode) {
        sregs.cr0 |= kCr0Pg;
        sregs.cr3 = entry.cr3;
        sregs.cr4 = kCr4Pae;
        sregs.efer = kEferLme | kEferLma;
    }
    vcpu.set_sregs(sregs);

    kvm_regs regs{};
    regs.rflags = 0x2;  // bit 1 is reserved, always 1
    regs.rip = entry.rip;
    regs.rsp = entry.rsp;
    regs.rax = entry.rax;
    regs.rbx = entry.rbx;
    regs.rsi = entry.rsi;
    vcpu.set_regs(regs);
}

}  // namespace kvmini
