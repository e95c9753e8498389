// Where kvmini puts things in guest-physical memory (x86-64 PC layout).
// Every fixed guest address lives here, once.
#pragma once

#include <cstdint>

namespace kvmini::layout {

// The MMIO hole below 4 GiB: RAM that does not fit below it continues at 4 GiB.
// PCI BARs, the IOAPIC (0xfec00000) and the local APIC (0xfee00000) live in it.
inline constexpr uint64_t kMmioHoleStart = 0xc000'0000;
inline constexpr uint64_t kMmioHoleEnd = 0x1'0000'0000;
inline constexpr uint64_t kPciMmioStart = 0xc000'0000;   // BARs are placed from here...
inline constexpr uint64_t kPciMmioEnd = 0xfe00'0000;     // ...up to here (IOAPIC/LAPIC above)
inline constexpr uint64_t kIoapicBase = 0xfec0'0000;     // 82093AA default base
inline constexpr uint64_t kLapicBase = 0xfee0'0000;      // Intel SDM vol. 3A 11.4.1

// Low memory (below 1 MiB), as a PC BIOS leaves it.
inline constexpr uint64_t kGdtAddr = 0x500;              // boot GDT, 4 entries
inline constexpr uint64_t kIdtAddr = 0x520;              // empty boot IDT
inline constexpr uint64_t kBootParamsAddr = 0x7000;      // Linux "zero page" (boot_params)
inline constexpr uint64_t kPml4Addr = 0x9000;            // identity page tables for 64-bit entry
inline constexpr uint64_t kPdptAddr = 0xa000;
inline constexpr uint64_t kPdAddr = 0xb000;              // 4 page directories: 0xb000..0xefff
inline constexpr uint64_t kIdentityMapBytes = 4ull << 30; // 2 MiB pages covering 4 GiB
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;         // bytes, including the NUL
inline constexpr uint64_t kMultibootInfoAddr = 0x30000;  // Multiboot info, mmap, strings
inline constexpr uint64_t kEbdaStart = 0x9fc00;          // top 1 KiB of base memory: reserved
inline constexpr uint64_t kBiosAreaStart = 0xa0000;      // VGA + option ROMs + BIOS: reserved
inline constexpr uint64_t kMpTableAddr = 0xf0000;        // MP floating pointer + table (BIOS ROM area)
inline constexpr uint64_t kHighMemStart = 0x10'0000;     // 1 MiB: where protected-mode kernels load

}  // namespace kvmini::layout
