// The parts of the Linux/x86 boot protocol kvmini uses: the setup header a
// bzImage carries at file offset 0x1f1, and the "zero page" (struct
// boot_params) a 64-bit boot loader hands the kernel in %rsi.
//
// References (Linux 6.1 source):
//   boot.rst       Documentation/x86/boot.rst ("The Real-Mode Kernel Header",
//                  "Details of Header Fields", "64-bit Boot Protocol")
//   zero-page.rst  Documentation/x86/zero-page.rst (boot_params offsets)
//   bootparam.h    arch/x86/include/uapi/asm/bootparam.h (layouts, flag bits)
// Everything is little-endian and packed; static_asserts pin every offset we
// read or write to the value in the tables of those documents.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvmini::linux_boot {

// --- Magic numbers and versions (boot.rst "Details of Header Fields") ---
inline constexpr uint16_t kBootFlag = 0xaa55;           // boot_flag, offset 0x1fe
inline constexpr uint32_t kHeaderMagic = 0x53726448;    // header, "HdrS" read as LE u32, offset 0x202
inline constexpr uint16_t kMinProtocol = 0x0206;        // 2.06: first with cmdline_size (what we check against)
inline constexpr uint16_t kXloadflagsProtocol = 0x020c; // 2.12: first with xloadflags (64-bit entry)
inline constexpr uint16_t kInitSizeProtocol = 0x020a;   // 2.10: first with pref_address / init_size
inline constexpr uint16_t kPayloadProtocol = 0x0208;    // 2.08: first with payload_offset/length
inline constexpr uint16_t kProtocolWeSpeak = 0x020f;    // 2.15: what a boot_params we build from scratch claims
inline constexpr uint8_t kLoaderTypeUndefined = 0xff;   // type_of_loader: "no assigned id"
inline constexpr uint16_t kVidModeNormal = 0xffff;      // vid_mode: "normal" (boot.rst "Special Command Line Options", vga=)

// Offsets inside a bzImage file (boot.rst "The Real-Mode Kernel Header",
// "Loading The Rest of The Kernel", "64-bit Boot Protocol").
inline constexpr uint64_t kSetupHeaderOffset = 0x1f1;   // setup_header starts here in the file and in boot_params
inline constexpr uint64_t kHeaderEndByteOffset = 0x201; // jump's offset byte: header ends at 0x202 + this byte
inline constexpr uint64_t kJumpEndOffset = 0x202;
inline constexpr uint64_t kSectorSize = 512;            // "a sector" is always 512 bytes
inline constexpr uint8_t kDefaultSetupSects = 4;        // setup_sects == 0 means 4
inline constexpr uint64_t kEntry64Offset = 0x200;       // 64-bit entry = protected-mode load address + 0x200
inline constexpr uint64_t kSyssizeUnit = 16;            // syssize counts 16-byte paragraphs

// loadflags (bootparam.h).
inline constexpr uint8_t kLoadedHigh = 1u << 0;   // protected-mode code loaded at 0x100000
inline constexpr uint8_t kCanUseHeap = 1u << 7;
// xloadflags (bootparam.h, protocol 2.12+).
inline constexpr uint16_t kXlfKernel64 = 1u << 0;          // has the 64-bit entry at +0x200
inline constexpr uint16_t kXlfCanBeLoadedAbove4g = 1u << 1;

// Highest initrd byte a kernel without initrd_addr_max should get: boot.rst
// says 0x37ffffff for protocol <= 2.02; for a vmlinux (no header) we use the
// x86-64 kernels' own value.
inline constexpr uint32_t kVmlinuxInitrdAddrMax = 0x7fffffff;
// Kernel alignment we advertise for a vmlinux (CONFIG_PHYSICAL_ALIGN default, 2 MiB).
inline constexpr uint32_t kVmlinuxKernelAlignment = 0x200000;

// e820 table in the zero page (bootparam.h E820_MAX_ENTRIES_ZEROPAGE).
inline constexpr size_t kE820MaxEntries = 128;

// struct setup_header (boot.rst header table; bootparam.h). It sits at offset
// 0x1f1 both in the bzImage file and in boot_params.
struct [[gnu::packed]] SetupHeader {
    uint8_t setup_sects;          // 0x1f1
    uint16_t root_flags;          // 0x1f2
    uint32_t syssize;             // 0x1f4
    uint16_t ram_size;            // 0x1f8
    uint16_t vid_mode;            // 0x1fa
    uint16_t root_dev;            // 0x1fc
    uint16_t boot_flag;           // 0x1fe
    uint16_t jump;                // 0x200
    uint32_t header;              // 0x202
    uint16_t version;             // 0x206
    uint32_t realmode_swtch;      // 0x208
    uint16_t start_sys_seg;       // 0x20c
    uint16_t kernel_version;      // 0x20e
    uint8_t type_of_loader;       // 0x210
    uint8_t loadflags;            // 0x211
    uint16_t setup_move_size;     // 0x212
    uint32_t code32_start;        // 0x214
    uint32_t ramdisk_image;       // 0x218
    uint32_t ramdisk_size;        // 0x21c
    uint32_t bootsect_kludge;     // 0x220
    uint16_t heap_end_ptr;        // 0x224
    uint8_t ext_loader_ver;       // 0x226
    uint8_t ext_loader_type;      // 0x227
    uint32_t cmd_line_ptr;        // 0x228
    uint32_t initrd_addr_max;     // 0x22c
    uint32_t kernel_alignment;    // 0x230
    uint8_t relocatable_kernel;   // 0x234
    uint8_t min_alignment;        // 0x235
    uint16_t xloadflags;          // 0x236
    uint32_t cmdline_size;        // 0x238
    uint32_t hardware_subarch;    // 0x23c
    uint64_t hardware_subarch_data;  // 0x240
    uint32_t payload_offset;      // 0x248
    uint32_t payload_length;      // 0x24c
    uint64_t setup_data;          // 0x250
    uint64_t pref_address;        // 0x258
    uint32_t init_size;           // 0x260
    uint32_t handover_offset;     // 0x264
    uint32_t kernel_info_offset;  // 0x268
};

// Offsets in the header table are relative to the start of the boot sector.
#define KVMINI_HDR_AT(field, off) \
    static_assert(offsetof(SetupHeader, field) + kSetupHeaderOffset == (off), "setup_header." #field)
KVMINI_HDR_AT(setup_sects, 0x1f1);
KVMINI_HDR_AT(syssize, 0x1f4);
KVMINI_HDR_AT(vid_mode, 0x1fa);
KVMINI_HDR_AT(boot_flag, 0x1fe);
KVMINI_HDR_AT(jump, 0x200);
KVMINI_HDR_AT(header, 0x202);
KVMINI_HDR_AT(version, 0x206);
KVMINI_HDR_AT(type_of_loader, 0x210);
KVMINI_HDR_AT(loadflags, 0x211);
KVMINI_HDR_AT(code32_start, 0x214);
KVMINI_HDR_AT(ramdisk_image, 0x218);
KVMINI_HDR_AT(ramdisk_size, 0x21c);
KVMINI_HDR_AT(heap_end_ptr, 0x224);
KVMINI_HDR_AT(cmd_line_ptr, 0x228);
KVMINI_HDR_AT(initrd_addr_max, 0x22c);
KVMINI_HDR_AT(kernel_alignment, 0x230);
KVMINI_HDR_AT(relocatable_kernel, 0x234);
KVMINI_HDR_AT(xloadflags, 0x236);
KVMINI_HDR_AT(cmdline_size, 0x238);
KVMINI_HDR_AT(hardware_subarch, 0x23c);
KVMINI_HDR_AT(payload_offset, 0x248);
KVMINI_HDR_AT(payload_length, 0x24c);
KVMINI_HDR_AT(setup_data, 0x250);
KVMINI_HDR_AT(pref_address, 0x258);
KVMINI_HDR_AT(init_size, 0x260);
KVMINI_HDR_AT(kernel_info_offset, 0x268);
#undef KVMINI_HDR_AT
static_assert(sizeof(SetupHeader) == 0x26c - kSetupHeaderOffset);

// struct boot_e820_entry (bootparam.h): 20 bytes, packed.
struct [[gnu::packed]] BootE820Entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};
static_assert(sizeof(BootE820Entry) == 20);

// struct boot_params, the 4 KiB "zero page" (zero-page.rst; bootparam.h).
// Sub-structures kvmini never fills (screen_info, EDD, EFI, ...) are kept as
// opaque bytes of the documented size.
struct [[gnu::packed]] BootParams {
    uint8_t screen_info[0x40];         // 0x000
    uint8_t apm_bios_info[0x14];       // 0x040
    uint8_t pad2[4];                   // 0x054
    uint64_t tboot_addr;               // 0x058
    uint8_t ist_info[0x10];            // 0x060
    uint64_t acpi_rsdp_addr;           // 0x070
    uint8_t pad3[8];                   // 0x078
    uint8_t hd0_info[16];              // 0x080
    uint8_t hd1_info[16];              // 0x090
    uint8_t sys_desc_table[16];        // 0x0a0
    uint8_t olpc_ofw_header[16];       // 0x0b0
    uint32_t ext_ramdisk_image;        // 0x0c0
    uint32_t ext_ramdisk_size;         // 0x0c4
    uint32_t ext_cmd_line_ptr;         // 0x0c8
    uint8_t pad4[112];                 // 0x0cc
    uint32_t cc_blob_address;          // 0x13c
    uint8_t edid_info[0x80];           // 0x140
    uint8_t efi_info[0x20];            // 0x1c0
    uint32_t alt_mem_k;                // 0x1e0
    uint32_t scratch;                  // 0x1e4
    uint8_t e820_entries;              // 0x1e8
    uint8_t eddbuf_entries;            // 0x1e9
    uint8_t edd_mbr_sig_buf_entries;   // 0x1ea
    uint8_t kbd_status;                // 0x1eb
    uint8_t secure_boot;               // 0x1ec
    uint8_t pad5[2];                   // 0x1ed
    uint8_t sentinel;                  // 0x1ef
    uint8_t pad6[1];                   // 0x1f0
    SetupHeader hdr;                   // 0x1f1
    uint8_t pad7[0x290 - 0x26c];       // 0x26c
    uint32_t edd_mbr_sig_buffer[16];   // 0x290
    BootE820Entry e820_table[kE820MaxEntries];  // 0x2d0
    uint8_t pad8[48];                  // 0xcd0
    uint8_t eddbuf[0x1ec];             // 0xd00
    uint8_t pad9[276];                 // 0xeec
};

static_assert(offsetof(BootParams, ext_ramdisk_image) == 0x0c0);
static_assert(offsetof(BootParams, ext_ramdisk_size) == 0x0c4);
static_assert(offsetof(BootParams, ext_cmd_line_ptr) == 0x0c8);
static_assert(offsetof(BootParams, cc_blob_address) == 0x13c);
static_assert(offsetof(BootParams, alt_mem_k) == 0x1e0);
static_assert(offsetof(BootParams, e820_entries) == 0x1e8);
static_assert(offsetof(BootParams, sentinel) == 0x1ef);
static_assert(offsetof(BootParams, hdr) == kSetupHeaderOffset);
static_assert(offsetof(BootParams, edd_mbr_sig_buffer) == 0x290);
static_assert(offsetof(BootParams, e820_table) == 0x2d0);
static_assert(offsetof(BootParams, eddbuf) == 0xd00);
static_assert(sizeof(BootParams) == 0x1000);

}  // namespace kvmini::linux_boot
