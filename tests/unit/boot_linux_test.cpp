// BzImageLoader, VmlinuxLoader, detect_kernel_format and load_kernel on
// images built here byte by byte from the spec tables (boot.rst header
// offsets, the ELF64 header/program header layout), on corrupted copies of
// them, and on a real kernel when the host has one.
//
// The fixtures write every field at its documented offset with plain byte
// pokes, never through the loader's own structs, so a wrong struct layout in
// vmm/boot/boot_params.h shows up as a failure here.
#include <fcntl.h>
#include <glob.h>
#include <gtest/gtest.h>

#include "tests/unit/boot_test_util.h"
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "vmm/boot/linux_loader.h"
#include "vmm/error.h"
#include "vmm/guest_memory.h"

namespace kvmini {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kZeroPage = 0x7000;  // layout::kBootParamsAddr, restated from the brief
constexpr uint64_t kCmdline = 0x20000;  // layout::kCmdlineAddr

using namespace boot_test;

Bytes pattern(size_t len, uint8_t seed)
{
    Bytes b(len);
    for (size_t i = 0; i < len; ++i) b[i] = static_cast<uint8_t>(i * 7 + seed + (i >> 8));
    return b;
}

// Checks the zero page's e820 table (count at 0x1e8, 20-byte entries at
// 0x2d0) against GuestMemory::e820().
void expect_e820(const GuestMemory& mem)
{
    const std::vector<E820Entry> want = mem.e820();
    ASSERT_EQ(at<uint8_t>(mem, kZeroPage + 0x1e8), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        const uint64_t e = kZeroPage + 0x2d0 + 20 * i;
        EXPECT_EQ(at<uint64_t>(mem, e), want[i].addr) << i;
        EXPECT_EQ(at<uint64_t>(mem, e + 8), want[i].size) << i;
        EXPECT_EQ(at<uint32_t>(mem, e + 16), want[i].type) << i;
    }
    EXPECT_EQ(at<uint64_t>(mem, kZeroPage + 0x2d0 + 20 * want.size()), 0u);  // nothing after
}

// ------------------------------------------------------------ bzImage fixture

struct BzSpec {
    uint8_t setup_sects = 4;
    uint16_t version = 0x020f;
    uint8_t loadflags = 0x01;     // LOADED_HIGH
    uint16_t xloadflags = 0x03;   // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
    uint32_t cmdline_size = 2047;
    uint32_t initrd_addr_max = 0x7fffffff;
    uint8_t relocatable = 1;
    uint32_t kernel_alignment = 0x200000;
    uint64_t pref_address = 0x1000000;
    uint32_t init_size = 0x800000;
    size_t pm_size = 0x4000;       // protected-mode part, multiple of 16
    uint8_t header_len_byte = 0x6a; // 0x202 + 0x6a = 0x26c: the whole 2.15 header
};

// Layout per boot.rst: boot sector + setup_sects sectors of real-mode code,
// then the protected-mode kernel whose 64-bit entry is at +0x200.
Bytes make_bzimage(const BzSpec& s)
{
    const size_t setup = (size_t{s.setup_sects ? s.setup_sects : 4u} + 1) * 512;
    Bytes b(setup, 0xab);                 // junk a loader must not copy
    put8(b, 0x1f1, s.setup_sects);
    put16(b, 0x1f2, 1);                   // root_flags
    put32(b, 0x1f4, static_cast<uint32_t>(s.pm_size / 16));  // syssize
    put16(b, 0x1fa, 0xfffd);              // vid_mode "ask": loader must override
    put16(b, 0x1fc, 0);                   // root_dev
    put16(b, 0x1fe, 0xaa55);              // boot_flag
    put8(b, 0x200, 0xeb);                 // jump: short jmp
    put8(b, 0x201, s.header_len_byte);
    put32(b, 0x202, 0x53726448);          // "HdrS"
    put16(b, 0x206, s.version);
    put32(b, 0x208, 0);                   // realmode_swtch
    put16(b, 0x20c, 0x1000);              // start_sys_seg
    put16(b, 0x20e, 0x0c00);              // kernel_version
    put8(b, 0x210, 0);                    // type_of_loader
    put8(b, 0x211, s.loadflags);
    put16(b, 0x212, 0x8000);              // setup_move_size
    put32(b, 0x214, 0x100000);            // code32_start
    put32(b, 0x218, 0);                   // ramdisk_image
    put32(b, 0x21c, 0);                   // ramdisk_size
    put32(b, 0x220, 0);
    put16(b, 0x224, 0);                   // heap_end_ptr
    put8(b, 0x226, 0);
    put8(b, 0x227, 0);
    put32(b, 0x228, 0);                   // cmd_line_ptr
    put32(b, 0x22c, s.initrd_addr_max);
    put32(b, 0x230, s.kernel_alignment);
    put8(b, 0x234, s.relocatable);
    put8(b, 0x235, 21);                   // min_alignment 2 MiB
    put16(b, 0x236, s.xloadflags);
    put32(b, 0x238, s.cmdline_size);
    put32(b, 0x23c, 0);                   // hardware_subarch
    put64(b, 0x240, 0);
    put32(b, 0x248, 0x100);               // payload_offset
    put32(b, 0x24c, 0x1000);              // payload_length
    put64(b, 0x250, 0);                   // setup_data
    put64(b, 0x258, s.pref_address);
    put32(b, 0x260, s.init_size);
    put32(b, 0x264, 0x190);               // handover_offset
    put32(b, 0x268, 0x5678);              // kernel_info_offset
    const Bytes pm = pattern(s.pm_size, 0x11);
    b.insert(b.end(), pm.begin(), pm.end());
    return b;
}

// ------------------------------------------------------------ vmlinux fixture

struct Seg {
    uint64_t vaddr;
    uint64_t paddr;
    Bytes data;
    uint64_t memsz;
};

// ELF64 little-endian, System V gABI "ELF Header" / "Program Header" offsets.
Bytes make_elf64(uint16_t machine, uint16_t type, uint64_t entry, const std::vector<Seg>& segs,
                 uint8_t elf_class = 2)
{
    const size_t ehsize = 64, phentsize = 56;
    const size_t phoff = ehsize;
    size_t data_off = (phoff + phentsize * segs.size() + 0xfff) & ~size_t{0xfff};
    Bytes b(data_off, 0);
    b[0] = 0x7f, b[1] = 'E', b[2] = 'L', b[3] = 'F';
    b[4] = elf_class;  // EI_CLASS
    b[5] = 1;          // EI_DATA: little-endian
    b[6] = 1;          // EI_VERSION
    put16(b, 16, type);
    put16(b, 18, machine);
    put32(b, 20, 1);   // e_version
    put64(b, 24, entry);
    put64(b, 32, phoff);
    put64(b, 40, 0);   // e_shoff
    put32(b, 48, 0);   // e_flags
    put16(b, 52, ehsize);
    put16(b, 54, phentsize);
    put16(b, 56, static_cast<uint16_t>(segs.size()));
    for (size_t i = 0; i < segs.size(); ++i) {
        const size_t ph = phoff + i * phentsize;
        put32(b, ph + 0, 1);   // PT_LOAD
        put32(b, ph + 4, 7);   // RWX
        put64(b, ph + 8, b.size());
        put64(b, ph + 16, segs[i].vaddr);
        put64(b, ph + 24, segs[i].paddr);
        put64(b, ph + 32, segs[i].data.size());
        put64(b, ph + 40, segs[i].memsz);
        put64(b, ph + 48, 0x1000);
        b.insert(b.end(), segs[i].data.begin(), segs[i].data.end());
    }
    return b;
}

constexpr uint16_t kEmX8664 = 62, kEmAarch64 = 183, kEm386 = 3;
constexpr uint16_t kEtExec = 2, kEtDyn = 3;

std::vector<Seg> vmlinux_segments()
{
    // Text at 16 MiB, data + bss at 20 MiB, like a real x86-64 vmlinux (which
    // links at 0xffffffff81000000 with physical addresses from 16 MiB).
    return {{0xffffffff81000000ull, 0x1000000, pattern(0x2000, 0x21), 0x2000},
            {0xffffffff81400000ull, 0x1400000, pattern(0x1000, 0x31), 0x5000}};
}

// ============================================================ bzImage tests

TEST(BootBzImage, LoadsAtPrefAddressAndFillsZeroPage)
{
    TempDir dir;
    const BzSpec spec;
    const Bytes image = make_bzimage(spec);
    const std::string path = dir.write("bzImage", image);
    GuestMemory mem(256 * kMiB);
    mem.fill(kZeroPage, 0x5a, 4096);  // stale junk must not survive

    BzImageLoader loader(mem, path, std::nullopt, "console=ttyS0 root=/dev/vda");
    const CpuEntryState s = loader.load();

    // Relocatable and fits: loaded at pref_address, entered at +0x200 in
    // 64-bit mode with rsi = the zero page (boot.rst "64-bit Boot Protocol").
    EXPECT_EQ(s.mode, CpuEntryState::Mode::kLong64);
    EXPECT_EQ(s.rip, 0x1000200u);
    EXPECT_EQ(s.rsi, kZeroPage);
    EXPECT_EQ(s.cr3, 0x9000u);
    EXPECT_EQ(loader.placement().kernel_start, 0x1000000u);
    EXPECT_EQ(loader.placement().kernel_end, 0x1000000u + spec.init_size);
    EXPECT_EQ(guest_bytes(mem, 0x1000000, spec.pm_size), Bytes(image.begin() + 5 * 512, image.end()));

    // The setup header is the file's, bytes 0x1f1..0x26c, except the fields a
    // loader writes.
    const Bytes hdr = guest_bytes(mem, kZeroPage + 0x1f1, 0x26c - 0x1f1);
    for (size_t off = 0x1f1; off < 0x26c; ++off) {
        const bool written = (off >= 0x1fa && off < 0x1fc) || off == 0x210 || (off >= 0x214 && off < 0x220) ||
                             (off >= 0x228 && off < 0x22c);
        if (!written) {
            EXPECT_EQ(hdr[off - 0x1f1], image[off]) << std::hex << "offset 0x" << off;
        }
    }
    EXPECT_EQ(at<uint16_t>(mem, kZeroPage + 0x1fe), 0xaa55);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x202), 0x53726448u);
    EXPECT_EQ(at<uint16_t>(mem, kZeroPage + 0x1fa), 0xffff);      // vid_mode normal
    EXPECT_EQ(at<uint8_t>(mem, kZeroPage + 0x210), 0xff);         // type_of_loader
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x214), 0x1000000u);  // code32_start
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x218), 0u);          // no initrd
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x21c), 0u);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x228), kCmdline);    // cmd_line_ptr
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x0c8), 0u);          // ext_cmd_line_ptr
    EXPECT_EQ(guest_string(mem, kCmdline), "console=ttyS0 root=/dev/vda");

    // Everything outside the header, e820 count and table is zero.
    const Bytes zp = guest_bytes(mem, kZeroPage, 4096);
    for (size_t off = 0; off < 4096; ++off) {
        if (off == 0x1e8 || (off >= 0x1f1 && off < 0x26c) || (off >= 0x2d0 && off < 0xcd0)) continue;
        ASSERT_EQ(zp[off], 0) << std::hex << "zero page offset 0x" << off;
    }
    // 256 MiB: base RAM, the reserved EBDA/BIOS hole, RAM from 1 MiB.
    ASSERT_EQ(at<uint8_t>(mem, kZeroPage + 0x1e8), 3);
    EXPECT_EQ(at<uint64_t>(mem, kZeroPage + 0x2d0), 0u);
    EXPECT_EQ(at<uint64_t>(mem, kZeroPage + 0x2d8), 0x9fc00u);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x2e0), 1u);
    EXPECT_EQ(at<uint64_t>(mem, kZeroPage + 0x2e4), 0x9fc00u);
    EXPECT_EQ(at<uint64_t>(mem, kZeroPage + 0x2ec), 0x100000u - 0x9fc00u);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x2f4), 2u);
    EXPECT_EQ(at<uint64_t>(mem, kZeroPage + 0x2f8), 0x100000u);
    EXPECT_EQ(at<uint64_t>(mem, kZeroPage + 0x300), 255 * kMiB);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x308), 1u);
    expect_e820(mem);

    // The boot GDT and page tables are in place for the 64-bit entry.
    EXPECT_EQ(at<uint64_t>(mem, 0x510), 0x00af9b000000ffffull);
    EXPECT_EQ(at<uint64_t>(mem, 0x518), 0x00cf93000000ffffull);
    EXPECT_EQ(at<uint64_t>(mem, 0x9000), 0xa003u);
}

TEST(BootBzImage, NonRelocatableLoadsAtOneMiB)
{
    TempDir dir;
    BzSpec spec;
    spec.relocatable = 0;
    spec.pref_address = 0x100000;
    const Bytes image = make_bzimage(spec);
    GuestMemory mem(64 * kMiB);
    BzImageLoader loader(mem, dir.write("bz", image), std::nullopt, "");
    const CpuEntryState s = loader.load();
    EXPECT_EQ(s.rip, 0x100200u);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x214), 0x100000u);
    EXPECT_EQ(guest_bytes(mem, 0x100000, 16), Bytes(image.begin() + 5 * 512, image.begin() + 5 * 512 + 16));
    EXPECT_EQ(guest_string(mem, kCmdline), "");
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x228), kCmdline);  // set even for an empty command line
}

TEST(BootBzImage, PrefAddressThatDoesNotFitFallsBackToOneMiB)
{
    TempDir dir;
    BzSpec spec;
    spec.init_size = 20 * kMiB;  // 16 MiB + 20 MiB > 32 MiB; 2 MiB + 20 MiB fits
    GuestMemory mem(32 * kMiB);
    BzImageLoader loader(mem, dir.write("bz", make_bzimage(spec)), std::nullopt, "");
    EXPECT_EQ(loader.load().rip, 0x100200u);
    EXPECT_EQ(loader.placement().kernel_end, 2 * kMiB + 20 * kMiB);
}

TEST(BootBzImage, SetupSectsZeroMeansFour)
{
    TempDir dir;
    BzSpec spec;
    spec.setup_sects = 0;
    const Bytes image = make_bzimage(spec);
    GuestMemory mem(64 * kMiB);
    BzImageLoader(mem, dir.write("bz", image), std::nullopt, "").load();
    EXPECT_EQ(guest_bytes(mem, 0x1000000, 64), Bytes(image.begin() + 5 * 512, image.begin() + 5 * 512 + 64));
}

TEST(BootBzImage, ShortHeaderCopiesOnlyWhatTheJumpSays)
{
    // A 2.10 header ends at 0x264 (jump byte 0x62): kernel_info_offset and
    // handover_offset are not the kernel's and must arrive as zero.
    TempDir dir;
    BzSpec spec;
    spec.version = 0x020c;
    spec.header_len_byte = 0x62;
    GuestMemory mem(64 * kMiB);
    BzImageLoader(mem, dir.write("bz", make_bzimage(spec)), std::nullopt, "").load();
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x260), spec.init_size);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x264), 0u);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x268), 0u);
}

TEST(BootBzImage, InitrdGoesHighestPageBelowRamEnd)
{
    TempDir dir;
    const Bytes initrd = pattern(10000, 0x44);
    GuestMemory mem(256 * kMiB);
    BzImageLoader loader(mem, dir.write("bz", make_bzimage({})), dir.write("initrd", initrd), "");
    loader.load();
    const uint64_t want = (256 * kMiB - 10000) & ~uint64_t{0xfff};
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x218), want);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x21c), 10000u);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x0c0), 0u);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x0c4), 0u);
    EXPECT_EQ(guest_bytes(mem, want, initrd.size()), initrd);
    EXPECT_EQ(loader.placement().initrd_addr, want);
}

TEST(BootBzImage, InitrdRespectsInitrdAddrMax)
{
    TempDir dir;
    BzSpec spec;
    spec.initrd_addr_max = 0x37ffffff;  // the pre-2.03 default
    GuestMemory mem(1024 * kMiB);
    BzImageLoader loader(mem, dir.write("bz", make_bzimage(spec)), dir.write("initrd", pattern(131072, 1)), "");
    loader.load();
    // boot.rst's own example: 131072 bytes under 0x37ffffff start at 0x37fe0000.
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x218), 0x37fe0000u);
}

TEST(BootBzImage, InitrdWithRamAboveTheHoleStaysBelowInitrdAddrMax)
{
    TempDir dir;
    GuestMemory mem(3584 * kMiB);  // 3 GiB low + 512 MiB from 4 GiB
    BzImageLoader loader(mem, dir.write("bz", make_bzimage({})), dir.write("initrd", pattern(5000, 2)), "");
    loader.load();
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x218), 0x80000000u - 0x2000u);
    ASSERT_EQ(at<uint8_t>(mem, kZeroPage + 0x1e8), 4);
    EXPECT_EQ(at<uint64_t>(mem, kZeroPage + 0x2d0 + 3 * 20), 0x100000000ull);
    EXPECT_EQ(at<uint64_t>(mem, kZeroPage + 0x2d0 + 3 * 20 + 8), 512 * kMiB);
    expect_e820(mem);
}

TEST(BootBzImage, InitrdTooBigIsAClearError)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);
    const std::string initrd = dir.sparse("huge.cpio", 60 * kMiB);  // kernel_end is 24 MiB
    expect_error([&] { BzImageLoader(mem, dir.write("bz", make_bzimage({})), initrd, "").load(); },
                 {initrd, "initrd of 62914560 bytes does not fit"});
}

TEST(BootBzImage, MissingOrEmptyInitrd)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);
    const std::string bz = dir.write("bz", make_bzimage({}));
    expect_error([&] { BzImageLoader(mem, bz, dir.path("nope"), "").load(); },
                 {"cannot open " + dir.path("nope") + ": No such file or directory"});
    expect_error([&] { BzImageLoader(mem, bz, dir.write("empty", {}), "").load(); }, {"initrd file is empty"});
}

TEST(BootBzImage, CommandLineLimitIsCmdlineSize)
{
    TempDir dir;
    BzSpec spec;
    spec.cmdline_size = 16;
    const std::string bz = dir.write("bz", make_bzimage(spec));
    GuestMemory mem(64 * kMiB);
    EXPECT_NO_THROW(BzImageLoader(mem, bz, std::nullopt, std::string(16, 'x')).load());
    EXPECT_EQ(guest_string(mem, kCmdline), std::string(16, 'x'));
    expect_error([&] { BzImageLoader(mem, bz, std::nullopt, std::string(17, 'x')).load(); },
                 {"command line is 17 bytes", bz, "at most 16", "cmdline_size"});
}

TEST(BootBzImage, CommandLineLimitIsAlsoOurBuffer)
{
    TempDir dir;
    BzSpec spec;
    spec.cmdline_size = 0x7fffffff;
    const std::string bz = dir.write("bz", make_bzimage(spec));
    GuestMemory mem(64 * kMiB);
    EXPECT_NO_THROW(BzImageLoader(mem, bz, std::nullopt, std::string(0xffff, 'y')).load());
    expect_error([&] { BzImageLoader(mem, bz, std::nullopt, std::string(0x10000, 'y')).load(); },
                 {"command line is 65536 bytes", "at most 65535"});
}

TEST(BootBzImage, KernelTooBigForRam)
{
    TempDir dir;
    BzSpec spec;
    spec.init_size = 100 * kMiB;
    GuestMemory mem(64 * kMiB);
    expect_error([&] { BzImageLoader(mem, dir.write("bz", make_bzimage(spec)), std::nullopt, "").load(); },
                 {"init_size", "RAM below the MMIO hole ends at 0x4000000"});
}

TEST(BootBzImage, TruncatedAtEveryBoundary)
{
    TempDir dir;
    const BzSpec spec;
    const Bytes image = make_bzimage(spec);
    GuestMemory mem(64 * kMiB);
    // Inside the boot sector, right before boot_flag, inside "HdrS", inside
    // version, inside the header fields, inside the setup code, just past the
    // setup (no entry at +0x200), and one byte short of syssize.
    for (size_t cut : {size_t{16}, size_t{0x1fe}, size_t{0x204}, size_t{0x207}, size_t{0x240}, size_t{0x400},
                       size_t{5 * 512 + 0x100}, image.size() - 1}) {
        const std::string p = dir.write("cut" + std::to_string(cut), Bytes(image.begin(), image.begin() + cut));
        expect_error([&] { BzImageLoader(mem, p, std::nullopt, "").load(); },
                     {p + ": truncated kernel:", "but the file is only " + std::to_string(cut) + " bytes"});
    }
}

TEST(BootBzImage, NoRoomForThe64BitEntry)
{
    // syssize 0 (no size claim) and only 0x100 bytes of protected-mode code:
    // the entry at +0x200 would be past the end of the file.
    TempDir dir;
    BzSpec spec;
    spec.pm_size = 0x100;
    Bytes image = make_bzimage(spec);
    put32(image, 0x1f4, 0);
    put32(image, 0x24c, 0);  // payload_length
    GuestMemory mem(64 * kMiB);
    const std::string p = dir.write("bz", image);
    expect_error([&] { BzImageLoader(mem, p, std::nullopt, "").load(); },
                 {"truncated kernel: 64-bit entry point at protected-mode offset 0x200"});
}

TEST(BootBzImage, TruncatedPayload)
{
    // syssize says less than the file has, but payload_offset/length point
    // past the end: the compressed payload check catches it.
    TempDir dir;
    Bytes image = make_bzimage({});
    put32(image, 0x24c, 0x10000);
    GuestMemory mem(64 * kMiB);
    const std::string p = dir.write("bz", image);
    expect_error([&] { BzImageLoader(mem, p, std::nullopt, "").load(); }, {"truncated kernel: compressed payload"});
}

TEST(BootBzImage, EmptyAndMissingKernel)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);
    const std::string empty = dir.write("empty", {});
    expect_error([&] { BzImageLoader(mem, empty, std::nullopt, "").load(); }, {empty + ": kernel file is empty"});
    expect_error([&] { BzImageLoader(mem, dir.path("missing"), std::nullopt, "").load(); },
                 {"cannot open " + dir.path("missing") + ": No such file or directory"});
    expect_error([&] { BzImageLoader(mem, dir.path(""), std::nullopt, "").load(); }, {"not a regular file"});
}

TEST(BootBzImage, BadMagicsAndFlags)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);
    auto try_load = [&](const Bytes& image) {
        const std::string p = dir.write("bad", image);
        return error_of([&] { BzImageLoader(mem, p, std::nullopt, "").load(); });
    };
    auto has = [](const std::string& msg, const std::string& part) {
        return msg.find(part) != std::string::npos;
    };

    Bytes b = make_bzimage({});
    put16(b, 0x1fe, 0x1234);
    std::string msg = try_load(b);
    EXPECT_TRUE(has(msg, "not a bzImage") && has(msg, "boot_flag") && has(msg, "0x1234")) << msg;

    b = make_bzimage({});
    b[0x203] = 'X';
    msg = try_load(b);
    EXPECT_TRUE(has(msg, "HdrS")) << msg;

    BzSpec old;
    old.version = 0x0205;
    msg = try_load(make_bzimage(old));
    EXPECT_TRUE(has(msg, "version 2.05") && has(msg, ">= 2.06")) << msg;

    BzSpec zimage;
    zimage.loadflags = 0;
    msg = try_load(make_bzimage(zimage));
    EXPECT_TRUE(has(msg, "LOADED_HIGH")) << msg;

    BzSpec no64;
    no64.xloadflags = 0x2;
    msg = try_load(make_bzimage(no64));
    EXPECT_TRUE(has(msg, "XLF_KERNEL_64")) << msg;

    BzSpec v211;
    v211.version = 0x020b;
    msg = try_load(make_bzimage(v211));
    EXPECT_TRUE(has(msg, "2.11") && has(msg, "xloadflags")) << msg;

    BzSpec short_hdr;
    short_hdr.header_len_byte = 0x30;  // ends at 0x232, before cmdline_size
    msg = try_load(make_bzimage(short_hdr));
    EXPECT_TRUE(has(msg, "setup header ends at 0x232")) << msg;

    const std::string text = dir.write_text("README", std::string(2000, 'a'));
    msg = error_of([&] { BzImageLoader(mem, text, std::nullopt, "").load(); });
    EXPECT_TRUE(has(msg, text) && has(msg, "not a bzImage")) << msg;
}

// ============================================================ vmlinux tests

TEST(BootVmlinux, LoadsSegmentsZeroesBssAndBuildsZeroPage)
{
    TempDir dir;
    const auto segs = vmlinux_segments();
    const std::string path = dir.write("vmlinux", make_elf64(kEmX8664, kEtExec, 0x1000100, segs));
    GuestMemory mem(256 * kMiB);
    mem.fill(0x1400000, 0xcc, 0x5000);  // the bss must come out zero
    mem.fill(kZeroPage, 0x5a, 4096);

    VmlinuxLoader loader(mem, path, std::nullopt, "console=ttyS0");
    const CpuEntryState s = loader.load();
    EXPECT_EQ(s.mode, CpuEntryState::Mode::kLong64);
    EXPECT_EQ(s.rip, 0x1000100u);
    EXPECT_EQ(s.rsi, kZeroPage);
    EXPECT_EQ(s.cr3, 0x9000u);
    EXPECT_EQ(loader.placement().kernel_start, 0x1000000u);
    EXPECT_EQ(loader.placement().kernel_end, 0x1405000u);

    EXPECT_EQ(guest_bytes(mem, 0x1000000, 0x2000), segs[0].data);
    EXPECT_EQ(guest_bytes(mem, 0x1400000, 0x1000), segs[1].data);
    EXPECT_EQ(guest_bytes(mem, 0x1401000, 0x4000), Bytes(0x4000, 0));

    // A zero page built from scratch (boot.rst header table offsets).
    EXPECT_EQ(at<uint16_t>(mem, kZeroPage + 0x1fe), 0xaa55);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x202), 0x53726448u);
    EXPECT_EQ(at<uint16_t>(mem, kZeroPage + 0x206), 0x020f);
    EXPECT_EQ(at<uint8_t>(mem, kZeroPage + 0x210), 0xff);
    EXPECT_EQ(at<uint8_t>(mem, kZeroPage + 0x211) & 1, 1);         // LOADED_HIGH
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x228), kCmdline);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x22c), 0x7fffffffu);  // initrd_addr_max
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x230), 0x200000u);    // kernel_alignment
    EXPECT_EQ(at<uint16_t>(mem, kZeroPage + 0x236) & 1, 1);        // XLF_KERNEL_64
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x238), 0xffffu);      // cmdline_size
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x218), 0u);
    EXPECT_EQ(at<uint8_t>(mem, kZeroPage + 0x1ef), 0);             // sentinel clear
    EXPECT_EQ(guest_string(mem, kCmdline), "console=ttyS0");
    expect_e820(mem);
}

TEST(BootVmlinux, VirtualEntryIsTranslatedThroughItsSegment)
{
    TempDir dir;
    GuestMemory mem(256 * kMiB);
    const std::string p = dir.write("vmlinux", make_elf64(kEmX8664, kEtExec, 0xffffffff81400010ull,
                                                         vmlinux_segments()));
    EXPECT_EQ(VmlinuxLoader(mem, p, std::nullopt, "").load().rip, 0x1400010u);
}

TEST(BootVmlinux, EntryOutsideEverySegment)
{
    TempDir dir;
    GuestMemory mem(256 * kMiB);
    for (uint64_t entry : {0x3000000ull, 0xffffffff82000000ull}) {
        const std::string p = dir.write("vmlinux", make_elf64(kEmX8664, kEtExec, entry, vmlinux_segments()));
        expect_error([&] { VmlinuxLoader(mem, p, std::nullopt, "").load(); },
                     {p, "entry point", "not inside any PT_LOAD"});
    }
}

TEST(BootVmlinux, InitrdAboveKernelBelow2GiB)
{
    TempDir dir;
    GuestMemory mem(3072 * kMiB);
    const Bytes initrd = pattern(3 * 4096 + 5, 9);
    VmlinuxLoader loader(mem, dir.write("vmlinux", make_elf64(kEmX8664, kEtExec, 0x1000000, vmlinux_segments())),
                         dir.write("initrd", initrd), "");
    loader.load();
    const uint64_t want = 0x80000000u - 4 * 4096;
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x218), want);
    EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x21c), initrd.size());
    EXPECT_EQ(guest_bytes(mem, want, initrd.size()), initrd);
}

TEST(BootVmlinux, InitrdThatDoesNotFitAboveTheKernel)
{
    TempDir dir;
    GuestMemory mem(32 * kMiB);  // kernel ends at 0x1405000; 12 MiB initrd cannot fit below 32 MiB
    const std::string initrd = dir.sparse("initrd", 12 * kMiB);
    expect_error(
        [&] {
            VmlinuxLoader(mem, dir.write("v", make_elf64(kEmX8664, kEtExec, 0x1000000, vmlinux_segments())), initrd,
                          "")
                .load();
        },
        {initrd, "does not fit", "0x1405000"});
}

TEST(BootVmlinux, ForeignElfs)
{
    TempDir dir;
    GuestMemory mem(256 * kMiB);
    const auto segs = vmlinux_segments();
    const std::string arm = dir.write("arm", make_elf64(kEmAarch64, kEtExec, 0x1000000, segs));
    expect_error([&] { VmlinuxLoader(mem, arm, std::nullopt, "").load(); },
                 {arm + ": ELF for machine 183 (AArch64), not x86-64"});
    const std::string dyn = dir.write("dyn", make_elf64(kEmX8664, kEtDyn, 0x1000000, segs));
    expect_error([&] { VmlinuxLoader(mem, dyn, std::nullopt, "").load(); },
                 {dyn + ": ELF type 3 (ET_DYN, a shared object or PIE), not an executable (ET_EXEC)"});
    const std::string text = dir.write_text("notes.txt", "just some text, long enough to not be truncated\n");
    expect_error([&] { VmlinuxLoader(mem, text, std::nullopt, "").load(); }, {text, "not an ELF file"});
    Bytes be = make_elf64(kEmX8664, kEtExec, 0x1000000, segs);
    be[5] = 2;  // big-endian
    const std::string bep = dir.write("be", be);
    expect_error([&] { VmlinuxLoader(mem, bep, std::nullopt, "").load(); }, {"big-endian"});
}

TEST(BootVmlinux, Elf32IsRejected)
{
    // A 32-bit ELF header (e_machine 3) with no Multiboot header.
    TempDir dir;
    Bytes b(0x1000, 0);
    b[0] = 0x7f, b[1] = 'E', b[2] = 'L', b[3] = 'F', b[4] = 1, b[5] = 1, b[6] = 1;
    put16(b, 16, kEtExec);
    put16(b, 18, kEm386);
    put32(b, 20, 1);
    put32(b, 24, 0x100000);
    put32(b, 28, 52);     // e_phoff
    put16(b, 40, 52);     // e_ehsize
    put16(b, 42, 32);     // e_phentsize
    put16(b, 44, 1);      // e_phnum
    put32(b, 52, 1);      // PT_LOAD
    put32(b, 52 + 4, 0);  // p_offset
    put32(b, 52 + 12, 0x100000);
    put32(b, 52 + 16, 0x1000);
    put32(b, 52 + 20, 0x1000);
    GuestMemory mem(64 * kMiB);
    const std::string p = dir.write("elf32", b);
    expect_error([&] { VmlinuxLoader(mem, p, std::nullopt, "").load(); }, {"32-bit ELF (i386)", "not an x86-64 vmlinux"});
}

TEST(BootVmlinux, SegmentOutsideRamOrBelowOneMiB)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);
    auto segs = vmlinux_segments();
    segs[1].paddr = 0x8000000;  // 128 MiB, RAM is 64
    const std::string high = dir.write("high", make_elf64(kEmX8664, kEtExec, 0x1000000, segs));
    expect_error([&] { VmlinuxLoader(mem, high, std::nullopt, "").load(); },
                 {high, "PT_LOAD segment 1", "outside guest RAM"});
    segs = vmlinux_segments();
    segs[1].paddr = 0x3ffe000;  // straddles the end of RAM
    const std::string edge = dir.write("edge", make_elf64(kEmX8664, kEtExec, 0x1000000, segs));
    expect_error([&] { VmlinuxLoader(mem, edge, std::nullopt, "").load(); }, {"outside guest RAM"});
    segs = vmlinux_segments();
    segs[0].paddr = 0x8000;  // over the page tables
    const std::string low = dir.write("low", make_elf64(kEmX8664, kEtExec, 0x1400000, segs));
    expect_error([&] { VmlinuxLoader(mem, low, std::nullopt, "").load(); }, {"PT_LOAD segment 0", "below 0x100000"});
    segs = vmlinux_segments();
    segs[0].paddr = 0xfffffffffffff000ull;
    const std::string wrap = dir.write("wrap", make_elf64(kEmX8664, kEtExec, 0x1400000, segs));
    expect_error([&] { VmlinuxLoader(mem, wrap, std::nullopt, "").load(); }, {"PT_LOAD segment 0"});
}

TEST(BootVmlinux, FileSizeBiggerThanMemSize)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);
    auto segs = vmlinux_segments();
    segs[0].memsz = 0x1000;  // filesz is 0x2000
    const std::string p = dir.write("v", make_elf64(kEmX8664, kEtExec, 0x1000000, segs));
    expect_error([&] { VmlinuxLoader(mem, p, std::nullopt, "").load(); }, {"p_filesz 0x2000 > p_memsz 0x1000"});
}

TEST(BootVmlinux, TruncatedAtEveryPart)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);
    const Bytes image = make_elf64(kEmX8664, kEtExec, 0x1000000, vmlinux_segments());
    const struct {
        size_t cut;
        const char* what;
    } cases[] = {
        {10, "ELF identification"},
        {40, "ELF header"},
        {64 + 56 + 10, "program header table"},
        {0x1000 + 0x100, "PT_LOAD segment 0"},
        {image.size() - 1, "PT_LOAD segment 1"},
    };
    for (const auto& c : cases) {
        const std::string p = dir.write("cut" + std::to_string(c.cut), Bytes(image.begin(), image.begin() + c.cut));
        expect_error([&] { VmlinuxLoader(mem, p, std::nullopt, "").load(); },
                     {p + ": truncated kernel: " + c.what, "only " + std::to_string(c.cut) + " bytes"});
    }
}

TEST(BootVmlinux, NoLoadableSegments)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);
    const std::string p = dir.write("v", make_elf64(kEmX8664, kEtExec, 0x1000000, {}));
    expect_error([&] { VmlinuxLoader(mem, p, std::nullopt, "").load(); }, {"no program headers"});
}

TEST(BootVmlinux, CommandLineTooLong)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);
    const std::string p = dir.write("v", make_elf64(kEmX8664, kEtExec, 0x1000000, vmlinux_segments()));
    expect_error([&] { VmlinuxLoader(mem, p, std::nullopt, std::string(70000, 'z')).load(); },
                 {"command line is 70000 bytes", "at most 65535"});
}

// ============================================================ detection / dispatch

// A tiny Multiboot image (header with address fields), enough for dispatch.
Bytes make_multiboot_raw()
{
    Bytes b(0x1000, 0x90);
    const uint32_t flags = 1u << 16;
    put32(b, 0, 0x1badb002);
    put32(b, 4, flags);
    put32(b, 8, static_cast<uint32_t>(0u - 0x1badb002u - flags));
    put32(b, 12, 0x100000);  // header_addr
    put32(b, 16, 0x100000);  // load_addr
    put32(b, 20, 0);         // load_end_addr: whole file
    put32(b, 24, 0);         // bss_end_addr
    put32(b, 28, 0x100020);  // entry_addr
    return b;
}

TEST(BootDetect, RecognisesEachFormat)
{
    TempDir dir;
    EXPECT_EQ(detect_kernel_format(dir.write("bz", make_bzimage({}))), KernelFormat::kBzImage);
    EXPECT_EQ(detect_kernel_format(dir.write("v", make_elf64(kEmX8664, kEtExec, 0x1000000, vmlinux_segments()))),
              KernelFormat::kElfVmlinux);
    EXPECT_EQ(detect_kernel_format(dir.write("arm", make_elf64(kEmAarch64, kEtExec, 0, vmlinux_segments()))),
              KernelFormat::kElfVmlinux);  // ELF, judged (and refused) by the loader
    EXPECT_EQ(detect_kernel_format(dir.write("mb", make_multiboot_raw())), KernelFormat::kMultiboot);
    EXPECT_EQ(detect_kernel_format(dir.write_text("t", "hello\n")), KernelFormat::kUnknown);
    Bytes no_hdrs = make_bzimage({});
    put32(no_hdrs, 0x202, 0);
    EXPECT_EQ(detect_kernel_format(dir.write("nohdrs", no_hdrs)), KernelFormat::kUnknown);
    EXPECT_STREQ(kernel_format_name(KernelFormat::kBzImage), "bzImage");
    EXPECT_STREQ(kernel_format_name(KernelFormat::kMultiboot), "Multiboot");
    EXPECT_THROW(detect_kernel_format(dir.path("missing")), Error);
    EXPECT_THROW(detect_kernel_format(dir.write("empty", {})), Error);
}

TEST(BootDetect, LoadKernelDispatches)
{
    TempDir dir;
    {
        GuestMemory mem(64 * kMiB);
        KernelPlacement where;
        const CpuEntryState s = load_kernel(mem, dir.write("bz", make_bzimage({})), std::nullopt, "a=b", &where);
        EXPECT_EQ(s.rip, 0x1000200u);
        EXPECT_EQ(where.kernel_start, 0x1000000u);
        EXPECT_EQ(guest_string(mem, kCmdline), "a=b");
    }
    {
        GuestMemory mem(64 * kMiB);
        const CpuEntryState s = load_kernel(
            mem, dir.write("v", make_elf64(kEmX8664, kEtExec, 0x1000040, vmlinux_segments())), std::nullopt, "");
        EXPECT_EQ(s.rip, 0x1000040u);
        EXPECT_EQ(s.mode, CpuEntryState::Mode::kLong64);
    }
    {
        GuestMemory mem(64 * kMiB);
        const std::string mod = dir.write("mod", pattern(100, 3));
        KernelPlacement where;
        const CpuEntryState s = load_kernel(mem, dir.write("mb", make_multiboot_raw()), mod + " arg", "x", &where);
        EXPECT_EQ(s.mode, CpuEntryState::Mode::kProtected32);
        EXPECT_EQ(s.rip, 0x100020u);
        EXPECT_EQ(s.rax, 0x2badb002u);
        EXPECT_EQ(where.initrd_addr, 0x101000u);
        EXPECT_EQ(where.initrd_size, 100u);
    }
    GuestMemory mem(64 * kMiB);
    const std::string text = dir.write_text("t", std::string(100, 'q'));
    expect_error([&] { load_kernel(mem, text, std::nullopt, ""); }, {text + ": not a kernel image"});
    const std::string arm = dir.write("arm", make_elf64(kEmAarch64, kEtExec, 0x1000000, vmlinux_segments()));
    expect_error([&] { load_kernel(mem, arm, std::nullopt, ""); }, {"AArch64"});
    expect_error([&] { load_kernel(mem, dir.path("missing"), std::nullopt, ""); },
                 {"cannot open " + dir.path("missing") + ": No such file or directory"});
}

// ============================================================ real kernels

std::vector<std::string> glob_paths(const std::string& pattern_text)
{
    std::vector<std::string> out;
    glob_t g{};
    if (::glob(pattern_text.c_str(), 0, nullptr, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
    ::globfree(&g);
    return out;
}

// Real kernels to try: $KVMINI_TEST_BZIMAGE / $KVMINI_TEST_VMLINUX, the
// host's /boot/vmlinuz-*, and guests/linux/build-kernel.sh's cache.
std::vector<std::string> real_kernels(const char* env, const std::vector<std::string>& patterns)
{
    std::vector<std::string> out;
    if (const char* e = std::getenv(env); e && *e) out.push_back(e);
    for (const std::string& p : patterns)
        for (const std::string& f : glob_paths(p))
            if (::access(f.c_str(), R_OK) == 0) out.push_back(f);
    return out;
}

std::string cache_dir()
{
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/kvmini";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/kvmini";
    return "/nonexistent";
}

Bytes file_bytes(const std::string& path, uint64_t off, uint64_t len)
{
    std::ifstream in(path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(off));
    Bytes b(len);
    in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(len));
    return b;
}

TEST(BootRealKernel, HostBzImage)
{
    const auto kernels =
        real_kernels("KVMINI_TEST_BZIMAGE", {"/boot/vmlinuz-*", cache_dir() + "/linux-6.1-*/bzImage"});
    if (kernels.empty()) GTEST_SKIP() << "no real bzImage (/boot/vmlinuz-*, build-kernel.sh cache, KVMINI_TEST_BZIMAGE)";
    TempDir dir;
    for (const std::string& k : kernels) {
        SCOPED_TRACE(k);
        ASSERT_EQ(detect_kernel_format(k), KernelFormat::kBzImage);
        GuestMemory mem(1024 * kMiB);
        BzImageLoader loader(mem, k, dir.write("initrd", pattern(8192, 5)), "console=ttyS0");
        const CpuEntryState s = loader.load();
        const uint64_t load = loader.placement().kernel_start;
        EXPECT_EQ(s.rip, load + 0x200);
        EXPECT_EQ(s.rsi, kZeroPage);
        const Bytes head = file_bytes(k, 0, 0x300);
        const uint64_t setup = (uint64_t{head[0x1f1] ? head[0x1f1] : 4u} + 1) * 512;
        EXPECT_EQ(guest_bytes(mem, load, 4096), file_bytes(k, setup, 4096));
        // Header fields a loader only reads arrive as the file has them.
        for (size_t off : {0x1f1, 0x1fe, 0x202, 0x206, 0x22c, 0x230, 0x234, 0x236, 0x238, 0x258, 0x260})
            EXPECT_EQ(at<uint8_t>(mem, kZeroPage + off), head[off]) << std::hex << off;
        EXPECT_EQ(at<uint8_t>(mem, kZeroPage + 0x210), 0xff);
        EXPECT_EQ(at<uint32_t>(mem, kZeroPage + 0x21c), 8192u);
        expect_e820(mem);
    }
}

TEST(BootRealKernel, BuiltVmlinux)
{
    const auto kernels = real_kernels("KVMINI_TEST_VMLINUX", {cache_dir() + "/linux-6.1-*/vmlinux"});
    if (kernels.empty()) GTEST_SKIP() << "no real vmlinux (build-kernel.sh cache, KVMINI_TEST_VMLINUX)";
    for (const std::string& k : kernels) {
        SCOPED_TRACE(k);
        ASSERT_EQ(detect_kernel_format(k), KernelFormat::kElfVmlinux);
        GuestMemory mem(512 * kMiB);
        VmlinuxLoader loader(mem, k, std::nullopt, "console=ttyS0");
        const CpuEntryState s = loader.load();
        // phys_startup_64: e_entry is physical, inside the first PT_LOAD.
        const Bytes eh = file_bytes(k, 0, 64);
        const uint64_t e_entry = le::load64(&eh[24]);  // Elf64_Ehdr.e_entry
        EXPECT_EQ(s.rip, e_entry < 0xffffffff80000000ull ? e_entry : s.rip);
        EXPECT_GE(s.rip, loader.placement().kernel_start);
        EXPECT_LT(s.rip, loader.placement().kernel_end);
        EXPECT_EQ(at<uint16_t>(mem, kZeroPage + 0x1fe), 0xaa55);
    }
}

}  // namespace
}  // namespace kvmini
