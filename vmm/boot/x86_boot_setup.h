// The CPU tables a loader leaves in guest memory for the boot vCPU: the boot
// GDT (the selectors of entry_state.h), an empty IDT, and identity-mapping
// page tables for 64-bit entry. vmm/ loads GDTR/IDTR/CR3 and the hidden
// segment state from the same values (boot_gdtr(), segment_for_selector()),
// so what KVM is told and what the guest can read back from memory agree.
//
// References: Intel SDM vol. 3A, 3.4.5 "Segment Descriptors" (descriptor
// bits), 3.5.1 "Segment Descriptor Tables" (GDTR/IDTR limit = size - 1),
// 4.5 "4-Level Paging" tables 4-15 (PML4E), 4-17 (PDPTE -> page directory),
// 4-18 (PDE mapping a 2-MByte page).
#pragma once

#include <cstdint>

#include "vmm/boot/entry_state.h"
#include "vmm/guest_memory.h"
#include "vmm/memory_layout.h"

namespace kvmini::boot_tables {

// --- Segment descriptors (SDM 3.4.5, figure 3-8) ---
// Access byte: P (bit 7), DPL (bits 6:5), S (bit 4), type (bits 3:0).
inline constexpr uint8_t kAccessPresent = 0x80;
inline constexpr uint8_t kAccessCodeOrData = 0x10;      // S = 1
inline constexpr uint8_t kTypeCodeExecReadAccessed = 0xb; // SDM table 3-1: 1011
inline constexpr uint8_t kTypeDataReadWriteAccessed = 0x3; // SDM table 3-1: 0011
// Flags nibble (descriptor bits 55:52): G, D/B, L, AVL.
inline constexpr uint8_t kFlagGranularity4k = 0x8;
inline constexpr uint8_t kFlagDefault32 = 0x4;          // D/B
inline constexpr uint8_t kFlagLong = 0x2;               // L (64-bit code)
inline constexpr uint32_t kFlatLimit = 0xfffff;         // with G: 4 GiB - 1

// Packs a descriptor from its fields (SDM figure 3-8).
constexpr uint64_t make_segment_descriptor(uint32_t base, uint32_t limit20, uint8_t access, uint8_t flags)
{
    return (uint64_t{limit20} & 0xffff) | ((uint64_t{base} & 0xffffff) << 16) | (uint64_t{access} << 40) |
           ((uint64_t{limit20} >> 16 & 0xf) << 48) | (uint64_t{flags & 0xfu} << 52) | ((uint64_t{base} >> 24) << 56);
}

// The boot GDT, indexed by selector >> 3. Accessed bits are preset: VMX
// requires them in the hidden state of usable segments, and the CPU then
// never needs to write the table.
inline constexpr uint64_t kBootGdt[] = {
    0,  // 0x00: null
    make_segment_descriptor(0, kFlatLimit, kAccessPresent | kAccessCodeOrData | kTypeCodeExecReadAccessed,
                            kFlagGranularity4k | kFlagDefault32),  // 0x08: flat 32-bit code
    make_segment_descriptor(0, kFlatLimit, kAccessPresent | kAccessCodeOrData | kTypeCodeExecReadAccessed,
                            kFlagGranularity4k | kFlagLong),       // 0x10: 64-bit code (__BOOT_CS)
    make_segment_descriptor(0, kFlatLimit, kAccessPresent | kAccessCodeOrData | kTypeDataReadWriteAccessed,
                            kFlagGranularity4k | kFlagDefault32),  // 0x18: flat data (__BOOT_DS)
};
inline constexpr unsigned kBootGdtEntries = sizeof(kBootGdt) / sizeof(kBootGdt[0]);
static_assert(kBootGdt[boot_selectors::kCode32 >> 3] == 0x00cf9b000000ffffull);
static_assert(kBootGdt[boot_selectors::kCode64 >> 3] == 0x00af9b000000ffffull);
static_assert(kBootGdt[boot_selectors::kData >> 3] == 0x00cf93000000ffffull);
static_assert(layout::kGdtAddr + sizeof(kBootGdt) <= layout::kIdtAddr, "boot GDT runs into the IDT");

// A descriptor unpacked into what KVM's struct kvm_segment wants.
struct SegmentFields {
    uint64_t base = 0;
    uint32_t limit = 0;   // in bytes - 1, already scaled by G (0xffffffff for flat)
    uint16_t selector = 0;
    uint8_t type = 0;     // 4-bit type field
    bool s = false;       // code/data (not system)
    uint8_t dpl = 0;
    bool present = false;
    bool avl = false;
    bool l = false;
    bool db = false;
    bool g = false;
};

constexpr SegmentFields decode_segment_descriptor(uint64_t d, uint16_t selector = 0)
{
    SegmentFields f;
    f.base = (d >> 16 & 0xffffff) | (d >> 56 & 0xff) << 24;
    const uint32_t limit20 = static_cast<uint32_t>((d & 0xffff) | (d >> 48 & 0xf) << 16);
    f.g = d >> 55 & 1;
    f.limit = f.g ? (limit20 << 12) | 0xfff : limit20;
    f.selector = selector;
    f.type = d >> 40 & 0xf;
    f.s = d >> 44 & 1;
    f.dpl = d >> 45 & 3;
    f.present = d >> 47 & 1;
    f.avl = d >> 52 & 1;
    f.l = d >> 53 & 1;
    f.db = d >> 54 & 1;
    return f;
}

// Descriptor of a boot selector (0x08, 0x10, 0x18); throws Error for others.
uint64_t gdt_entry(unsigned index);
SegmentFields segment_for_selector(uint16_t selector);

// --- Descriptor table registers (SDM 3.5.1: limit is size in bytes - 1) ---
struct DescriptorTableRegister {
    uint64_t base;
    uint16_t limit;
};
inline constexpr DescriptorTableRegister kBootGdtr{layout::kGdtAddr, sizeof(kBootGdt) - 1};
// One all-zero 16-byte gate: the guest runs with interrupts off until it
// loads its own IDT; anything delivered before that faults.
inline constexpr uint64_t kBootIdtBytes = 16;
inline constexpr DescriptorTableRegister kBootIdtr{layout::kIdtAddr, kBootIdtBytes - 1};

// --- Identity page tables (SDM 4.5) ---
inline constexpr uint64_t kPtePresent = 1ull << 0;
inline constexpr uint64_t kPteWritable = 1ull << 1;
inline constexpr uint64_t kPdePageSize = 1ull << 7;     // PS: PDE maps a 2 MiB page
inline constexpr uint64_t kPageTableBytes = 4096;       // 512 eight-byte entries
inline constexpr uint64_t kEntriesPerTable = 512;
inline constexpr uint64_t kLargePageBytes = 2ull << 20;
inline constexpr uint64_t kPageDirectories = layout::kIdentityMapBytes / (kLargePageBytes * kEntriesPerTable);
static_assert(layout::kIdentityMapBytes % (kLargePageBytes * kEntriesPerTable) == 0);
static_assert(kPageDirectories >= 1 && kPageDirectories <= kEntriesPerTable, "identity map must fit one PDPT");
static_assert(layout::kPdptAddr >= layout::kPml4Addr + kPageTableBytes);
static_assert(layout::kPdAddr >= layout::kPdptAddr + kPageTableBytes);

// Each writer throws Error if guest RAM does not cover its fixed address.
void write_boot_gdt(GuestMemory& mem);
void write_boot_idt(GuestMemory& mem);
// Maps [0, kIdentityMapBytes) virtual == physical with 2 MiB pages; returns cr3.
uint64_t write_identity_page_tables(GuestMemory& mem);
// All three; returns cr3 (= layout::kPml4Addr).
uint64_t write_boot_cpu_tables(GuestMemory& mem);

}  // namespace kvmini::boot_tables
