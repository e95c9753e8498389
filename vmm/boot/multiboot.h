// Multiboot Specification version 0.6.96 (GNU GRUB), the parts a loader
// needs: the OS image header (section 3.1), the machine state at entry
// (section 3.2) and the boot information structure (section 3.3).
// All structures are little-endian and packed; offsets are asserted against
// the figures in the spec.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvmini::multiboot {

// 3.1.1: the header lies completely within the first 8192 bytes of the image
// and is 32-bit aligned.
inline constexpr uint64_t kSearchBytes = 8192;
inline constexpr uint64_t kHeaderAlign = 4;

// 3.1.2: magic, and flags + magic + checksum == 0 (mod 2^32).
inline constexpr uint32_t kHeaderMagic = 0x1badb002;
// Flags bits 0-15 are requirements: a loader that does not understand one set
// there must fail. Bits 16-31 are optional features.
inline constexpr uint32_t kFlagPageAlignModules = 1u << 0;
inline constexpr uint32_t kFlagMemoryInfo = 1u << 1;
inline constexpr uint32_t kFlagVideoMode = 1u << 2;
inline constexpr uint32_t kFlagAddressFields = 1u << 16;  // 3.1.3 fields are valid ("a.out kludge")
inline constexpr uint32_t kRequiredFlagsMask = 0x0000ffff;
inline constexpr uint32_t kModuleAlign = 4096;  // what bit 0 asks for

// 3.2: EAX at entry.
inline constexpr uint32_t kBootloaderMagic = 0x2badb002;

// 3.1.2 - 3.1.4: the header. Fields after checksum are only meaningful when
// the matching flag is set; a header without bit 16 may be just 12 bytes.
struct [[gnu::packed]] Header {
    uint32_t magic;          // 0
    uint32_t flags;          // 4
    uint32_t checksum;       // 8
    uint32_t header_addr;    // 12 (flags[16])
    uint32_t load_addr;      // 16
    uint32_t load_end_addr;  // 20 (0: load to the end of the file)
    uint32_t bss_end_addr;   // 24 (0: no bss)
    uint32_t entry_addr;     // 28
    uint32_t mode_type;      // 32 (flags[2])
    uint32_t width;          // 36
    uint32_t height;         // 40
    uint32_t depth;          // 44
};
static_assert(offsetof(Header, header_addr) == 12);
static_assert(offsetof(Header, entry_addr) == 28);
static_assert(offsetof(Header, mode_type) == 32);
static_assert(sizeof(Header) == 48);
inline constexpr uint64_t kMagicFieldsBytes = 12;    // magic, flags, checksum
inline constexpr uint64_t kAddressFieldsEnd = 32;    // header through entry_addr

// 3.3: flags of the boot information structure (which fields are valid).
inline constexpr uint32_t kInfoMemory = 1u << 0;        // mem_lower, mem_upper
inline constexpr uint32_t kInfoBootDevice = 1u << 1;
inline constexpr uint32_t kInfoCmdline = 1u << 2;
inline constexpr uint32_t kInfoModules = 1u << 3;       // mods_count, mods_addr
inline constexpr uint32_t kInfoMemoryMap = 1u << 6;     // mmap_length, mmap_addr
inline constexpr uint32_t kInfoBootLoaderName = 1u << 9;

// 3.3: the boot information structure.
struct [[gnu::packed]] Info {
    uint32_t flags;              // 0
    uint32_t mem_lower;          // 4   KiB of memory from 0 (at most 640)
    uint32_t mem_upper;          // 8   KiB of memory from 1 MiB up to the first hole
    uint32_t boot_device;        // 12
    uint32_t cmdline;            // 16  physical address of a C string
    uint32_t mods_count;         // 20
    uint32_t mods_addr;          // 24
    uint32_t syms[4];            // 28-40
    uint32_t mmap_length;        // 44  bytes of the buffer
    uint32_t mmap_addr;          // 48
    uint32_t drives_length;      // 52
    uint32_t drives_addr;        // 56
    uint32_t config_table;       // 60
    uint32_t boot_loader_name;   // 64
    uint32_t apm_table;          // 68
    uint32_t vbe_control_info;   // 72
    uint32_t vbe_mode_info;      // 76
    uint16_t vbe_mode;           // 80
    uint16_t vbe_interface_seg;  // 82
    uint16_t vbe_interface_off;  // 84
    uint16_t vbe_interface_len;  // 86
    uint64_t framebuffer_addr;   // 88
    uint32_t framebuffer_pitch;  // 96
    uint32_t framebuffer_width;  // 100
    uint32_t framebuffer_height; // 104
    uint8_t framebuffer_bpp;     // 108
    uint8_t framebuffer_type;    // 109
    uint8_t color_info[6];       // 110
};
static_assert(offsetof(Info, mem_lower) == 4);
static_assert(offsetof(Info, cmdline) == 16);
static_assert(offsetof(Info, mods_count) == 20);
static_assert(offsetof(Info, mods_addr) == 24);
static_assert(offsetof(Info, mmap_length) == 44);
static_assert(offsetof(Info, mmap_addr) == 48);
static_assert(offsetof(Info, boot_loader_name) == 64);
static_assert(offsetof(Info, vbe_mode) == 80);
static_assert(offsetof(Info, framebuffer_addr) == 88);
static_assert(sizeof(Info) == 116);

// 3.3 "mods_addr": one 16-byte entry per module. mod_end is exclusive
// (first byte after the module).
struct [[gnu::packed]] ModuleEntry {
    uint32_t mod_start;
    uint32_t mod_end;
    uint32_t string;    // physical address of the module's C string
    uint32_t reserved;  // 0
};
static_assert(sizeof(ModuleEntry) == 16);

// 3.3 "mmap_addr": entries of a memory map buffer. `size` (the bytes after it,
// 20 here) is at offset -4 of the address fields; mmap_addr points at `size`.
struct [[gnu::packed]] MmapEntry {
    uint32_t size;
    uint64_t base_addr;
    uint64_t length;
    uint32_t type;  // 1: available RAM, anything else: reserved
};
static_assert(sizeof(MmapEntry) == 24);
inline constexpr uint32_t kMmapEntrySize = sizeof(MmapEntry) - sizeof(uint32_t);
inline constexpr uint32_t kMmapAvailable = 1;
inline constexpr uint32_t kMmapReserved = 2;

}  // namespace kvmini::multiboot
