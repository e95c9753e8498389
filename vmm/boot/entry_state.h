// What a loader hands to the vCPU set-up: the boot CPU's state at the entry
// point. Loaders only write guest memory and fill this; vmm/ turns it into
// KVM register state. Both entry modes use the boot GDT at layout::kGdtAddr
// (see x86_boot_setup.h): 0x08 flat 32-bit code, 0x10 64-bit code, 0x18 flat data,
// the selectors Linux's 64-bit boot protocol asks for (__BOOT_CS, __BOOT_DS).
#pragma once

#include <cstdint>

namespace kvmini {

struct CpuEntryState {
    enum class Mode {
        kLong64,       // 64-bit mode, paging on (identity map, cr3), CS=0x10
        kProtected32,  // 32-bit flat protected mode, paging off, CS=0x08 (Multiboot)
    };
    Mode mode = Mode::kLong64;
    uint64_t rip = 0;
    uint64_t rsp = 0;
    uint64_t rax = 0;
    uint64_t rbx = 0;
    uint64_t rsi = 0;
    uint64_t cr3 = 0;  // kLong64 only
};

namespace boot_selectors {
inline constexpr uint16_t kCode32 = 0x08;
inline constexpr uint16_t kCode64 = 0x10;
inline constexpr uint16_t kData = 0x18;
}  // namespace boot_selectors

}  // namespace kvmini
