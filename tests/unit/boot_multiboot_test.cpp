// MultibootLoader on Multiboot 0.6.96 images built here byte by byte: an i386
// ELF32 kernel, an x86-64 ELF64 kernel with a 32-bit entry, and a raw image
// using the header's address fields (flag 16); then corrupted copies. The
// boot information structure is read back at the offsets of spec 3.3.
#include <gtest/gtest.h>

#include "tests/unit/boot_test_util.h"
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "vmm/boot/linux_loader.h"
#include "vmm/boot/multiboot_loader.h"
#include "vmm/error.h"
#include "vmm/guest_memory.h"

namespace kvmini {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kInfo = 0x30000;  // layout::kMultibootInfoAddr
constexpr uint32_t kMagic = 0x1badb002;

using namespace boot_test;

Bytes pattern(size_t len, uint8_t seed)
{
    Bytes b(len);
    for (size_t i = 0; i < len; ++i) b[i] = static_cast<uint8_t>(i * 13 + seed + (i >> 8));
    return b;
}

// Multiboot header (spec 3.1): magic, flags, checksum [, address fields].
void put_mb_header(Bytes& b, size_t off, uint32_t flags, uint32_t header_addr = 0, uint32_t load_addr = 0,
                   uint32_t load_end = 0, uint32_t bss_end = 0, uint32_t entry = 0)
{
    put32(b, off, kMagic);
    put32(b, off + 4, flags);
    put32(b, off + 8, 0u - kMagic - flags);
    if (flags & (1u << 16)) {
        put32(b, off + 12, header_addr);
        put32(b, off + 16, load_addr);
        put32(b, off + 20, load_end);
        put32(b, off + 24, bss_end);
        put32(b, off + 28, entry);
    }
}

struct Seg32 {
    uint32_t vaddr;
    uint32_t paddr;
    Bytes data;
    uint32_t memsz;
};

// ELF32 i386 (System V gABI "ELF Header" / "Program Header", 32-bit layout).
// Segment data starts at file offset 0x1000, so the first segment is where a
// Multiboot header usually lives (the start of .text).
Bytes make_elf32(uint16_t machine, uint32_t entry, const std::vector<Seg32>& segs)
{
    Bytes b(0x1000, 0);
    b[0] = 0x7f, b[1] = 'E', b[2] = 'L', b[3] = 'F', b[4] = 1 /*ELFCLASS32*/, b[5] = 1, b[6] = 1;
    put16(b, 16, 2);  // ET_EXEC
    put16(b, 18, machine);
    put32(b, 20, 1);
    put32(b, 24, entry);
    put32(b, 28, 52);  // e_phoff
    put32(b, 32, 0);   // e_shoff
    put32(b, 36, 0);
    put16(b, 40, 52);  // e_ehsize
    put16(b, 42, 32);  // e_phentsize
    put16(b, 44, static_cast<uint16_t>(segs.size()));
    for (size_t i = 0; i < segs.size(); ++i) {
        const size_t ph = 52 + 32 * i;
        put32(b, ph + 0, 1);  // PT_LOAD
        put32(b, ph + 4, static_cast<uint32_t>(b.size()));
        put32(b, ph + 8, segs[i].vaddr);
        put32(b, ph + 12, segs[i].paddr);
        put32(b, ph + 16, static_cast<uint32_t>(segs[i].data.size()));
        put32(b, ph + 20, segs[i].memsz);
        put32(b, ph + 24, 7);
        put32(b, ph + 28, 0x1000);
        b.insert(b.end(), segs[i].data.begin(), segs[i].data.end());
    }
    return b;
}

// A typical test kernel: text at 1 MiB with the header first, data + bss at
// 1 MiB + 64 KiB.
std::vector<Seg32> mb_segments(uint32_t flags = 0x3)
{
    Bytes text = pattern(0x3000, 1);
    put_mb_header(text, 0, flags);
    return {{0x100000, 0x100000, text, 0x3000}, {0x110000, 0x110000, pattern(0x800, 2), 0x2000}};
}

constexpr uint16_t kEm386 = 3, kEmX8664 = 62, kEmArm = 40;

TEST(BootMultiboot, FindsHeaderOnlyAlignedWithChecksumInFirst8K)
{
    Bytes b(12000, 0);
    put_mb_header(b, 0x204, 0);
    auto loc = find_multiboot_header(b);
    ASSERT_TRUE(loc.has_value());
    EXPECT_EQ(loc->offset, 0x204u);
    EXPECT_EQ(loc->header.magic, kMagic);

    Bytes unaligned(12000, 0);
    put_mb_header(unaligned, 0x206, 0);
    EXPECT_FALSE(find_multiboot_header(unaligned).has_value());

    Bytes bad_sum(12000, 0);
    put_mb_header(bad_sum, 0x200, 0);
    put32(bad_sum, 0x208, 0);
    EXPECT_FALSE(find_multiboot_header(bad_sum).has_value());

    Bytes too_far(12000, 0);
    put_mb_header(too_far, 8192 - 8, 0);  // magic in range, checksum not
    EXPECT_FALSE(find_multiboot_header(too_far).has_value());
    put_mb_header(too_far, 8192 - 12, 0);  // last place the 12 bytes fit
    EXPECT_TRUE(find_multiboot_header(too_far).has_value());
}

TEST(BootMultiboot, Elf32KernelInfoStructureAndModules)
{
    TempDir dir;
    const auto segs = mb_segments();
    const std::string kernel = dir.write("kernel.elf", make_elf32(kEm386, 0x100010, segs));
    const Bytes m1 = pattern(5000, 7), m2 = pattern(4096, 8);
    const std::string p1 = dir.write("mod1.bin", m1), p2 = dir.write("mod2.bin", m2);
    GuestMemory mem(256 * kMiB);
    mem.fill(0x110000, 0xcc, 0x2000);

    MultibootLoader loader(mem, kernel, MultibootLoader::split_module_list(p1 + " arg=1 x, " + p2),
                           "console=ttyS0 test");
    const CpuEntryState s = loader.load();

    // Spec 3.2: EAX magic, EBX info, 32-bit protected mode at the ELF entry.
    EXPECT_EQ(s.mode, CpuEntryState::Mode::kProtected32);
    EXPECT_EQ(s.rip, 0x100010u);
    EXPECT_EQ(s.rax, 0x2badb002u);
    EXPECT_EQ(s.rbx, kInfo);

    EXPECT_EQ(guest_bytes(mem, 0x100000, 0x3000), segs[0].data);
    EXPECT_EQ(guest_bytes(mem, 0x110000, 0x800), segs[1].data);
    EXPECT_EQ(guest_bytes(mem, 0x110800, 0x1800), Bytes(0x1800, 0));  // bss
    EXPECT_EQ(loader.placement().kernel_start, 0x100000u);
    EXPECT_EQ(loader.placement().kernel_end, 0x112000u);

    // 3.3: flags = mem | cmdline | mods | mmap | boot_loader_name.
    EXPECT_EQ(at<uint32_t>(mem, kInfo + 0), 0x24du);
    EXPECT_EQ(at<uint32_t>(mem, kInfo + 4), 639u);             // mem_lower: 0..0x9fc00
    EXPECT_EQ(at<uint32_t>(mem, kInfo + 8), 255u * 1024);      // mem_upper: 1 MiB..256 MiB
    EXPECT_EQ(guest_string(mem, at<uint32_t>(mem, kInfo + 16)), "console=ttyS0 test");
    EXPECT_EQ(guest_string(mem, at<uint32_t>(mem, kInfo + 64)), "kvmini");

    // Modules: page aligned, above the kernel, in order, with their strings.
    ASSERT_EQ(at<uint32_t>(mem, kInfo + 20), 2u);
    const uint32_t mods = at<uint32_t>(mem, kInfo + 24);
    const uint32_t s1 = at<uint32_t>(mem, mods), e1 = at<uint32_t>(mem, mods + 4);
    const uint32_t s2 = at<uint32_t>(mem, mods + 16), e2 = at<uint32_t>(mem, mods + 20);
    EXPECT_EQ(s1, 0x112000u);
    EXPECT_EQ(e1 - s1, m1.size());
    EXPECT_EQ(s2, 0x114000u);
    EXPECT_EQ(e2 - s2, m2.size());
    EXPECT_EQ(guest_bytes(mem, s1, m1.size()), m1);
    EXPECT_EQ(guest_bytes(mem, s2, m2.size()), m2);
    EXPECT_EQ(guest_string(mem, at<uint32_t>(mem, mods + 8)), p1 + " arg=1 x");
    EXPECT_EQ(guest_string(mem, at<uint32_t>(mem, mods + 24)), p2);
    EXPECT_EQ(at<uint32_t>(mem, mods + 12), 0u);
    EXPECT_EQ(at<uint32_t>(mem, mods + 28), 0u);

    // Memory map: one 24-byte entry (size = 20) per e820 entry.
    const auto e820 = mem.e820();
    ASSERT_EQ(at<uint32_t>(mem, kInfo + 44), 24u * e820.size());
    const uint32_t mmap = at<uint32_t>(mem, kInfo + 48);
    for (size_t i = 0; i < e820.size(); ++i) {
        const uint64_t e = mmap + 24 * i;
        EXPECT_EQ(at<uint32_t>(mem, e), 20u);
        EXPECT_EQ(at<uint64_t>(mem, e + 4), e820[i].addr);
        EXPECT_EQ(at<uint64_t>(mem, e + 12), e820[i].size);
        EXPECT_EQ(at<uint32_t>(mem, e + 20), e820[i].type == E820Entry::kRam ? 1u : 2u);
    }
    ASSERT_EQ(e820.size(), 3u);
    EXPECT_EQ(at<uint64_t>(mem, mmap + 24 + 4), 0x9fc00u);
    EXPECT_EQ(at<uint32_t>(mem, mmap + 24 + 20), 2u);

    // Everything the info points at stays inside the info area below the EBDA.
    for (uint32_t p : {mods, mmap, at<uint32_t>(mem, kInfo + 16), at<uint32_t>(mem, kInfo + 64)}) {
        EXPECT_GE(p, kInfo + 116);
        EXPECT_LT(p, 0x9fc00u);
    }
    // The flat 32-bit code and data descriptors are in the GDT.
    EXPECT_EQ(at<uint64_t>(mem, 0x508), 0x00cf9b000000ffffull);
    EXPECT_EQ(at<uint64_t>(mem, 0x518), 0x00cf93000000ffffull);
}

TEST(BootMultiboot, NoModulesStillValidList)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);
    MultibootLoader(mem, dir.write("k", make_elf32(kEm386, 0x100000, mb_segments())), {}, "").load();
    EXPECT_EQ(at<uint32_t>(mem, kInfo + 20), 0u);
    EXPECT_EQ(guest_string(mem, at<uint32_t>(mem, kInfo + 16)), "");
    EXPECT_EQ(at<uint32_t>(mem, kInfo + 8), 63u * 1024);
}

TEST(BootMultiboot, HigherHalfEntryIsTranslated)
{
    TempDir dir;
    auto segs = mb_segments();
    segs[0].vaddr = 0xc0100000;
    segs[1].vaddr = 0xc0110000;
    GuestMemory mem(64 * kMiB);
    EXPECT_EQ(MultibootLoader(mem, dir.write("k", make_elf32(kEm386, 0xc0100020, segs)), {}, "").load().rip,
              0x100020u);
}

TEST(BootMultiboot, AddressFieldsLoadARawImage)
{
    // Spec 3.1.3: header at file offset 0x40 says header_addr 0x200040, so
    // the file is loaded from offset 0 at 0x200000; bss up to 0x210000.
    TempDir dir;
    Bytes image = pattern(0x3000, 5);
    put_mb_header(image, 0x40, (1u << 16) | 0x2, 0x200040, 0x200000, 0, 0x210000, 0x200080);
    GuestMemory mem(64 * kMiB);
    mem.fill(0x203000, 0xcc, 0xd000);
    MultibootLoader loader(mem, dir.write("raw.bin", image), {}, "");
    const CpuEntryState s = loader.load();
    EXPECT_EQ(s.rip, 0x200080u);
    EXPECT_EQ(guest_bytes(mem, 0x200000, image.size()), image);
    EXPECT_EQ(guest_bytes(mem, 0x203000, 0xd000), Bytes(0xd000, 0));
    EXPECT_EQ(loader.placement().kernel_end, 0x210000u);
}

TEST(BootMultiboot, AddressFieldsWithLoadEndAndOffset)
{
    // Header at offset 0x1010, header_addr - load_addr = 0x10: loading starts
    // at file offset 0x1000 and stops at load_end_addr.
    TempDir dir;
    Bytes image = pattern(0x4000, 6);
    put_mb_header(image, 0x1010, 1u << 16, 0x100010, 0x100000, 0x101800, 0, 0x100020);
    GuestMemory mem(64 * kMiB);
    mem.fill(0x101800, 0xcc, 0x1000);
    MultibootLoader(mem, dir.write("raw.bin", image), {}, "").load();
    EXPECT_EQ(guest_bytes(mem, 0x100000, 0x1800), Bytes(image.begin() + 0x1000, image.begin() + 0x2800));
    EXPECT_EQ(at<uint8_t>(mem, 0x101800), 0xcc);  // past load_end, no bss: untouched
}

TEST(BootMultiboot, Elf64WithA32BitEntry)
{
    // ELF64 x86-64 (gABI 64-bit layout) holding a Multiboot header.
    TempDir dir;
    Bytes b(0x1000, 0);
    b[0] = 0x7f, b[1] = 'E', b[2] = 'L', b[3] = 'F', b[4] = 2, b[5] = 1, b[6] = 1;
    put16(b, 16, 2);
    put16(b, 18, kEmX8664);
    put32(b, 20, 1);
    put64(b, 24, 0x100008);
    put64(b, 32, 64);
    put16(b, 52, 64);
    put16(b, 54, 56);
    put16(b, 56, 1);
    put32(b, 64 + 0, 1);
    put64(b, 64 + 8, 0x1000);
    put64(b, 64 + 16, 0x100000);
    put64(b, 64 + 24, 0x100000);
    put64(b, 64 + 32, 0x1000);
    put64(b, 64 + 40, 0x1000);
    Bytes text = pattern(0x1000, 3);
    put_mb_header(text, 0, 0);
    b.insert(b.end(), text.begin(), text.end());
    const std::string p = dir.write("k64", b);
    EXPECT_EQ(detect_kernel_format(p), KernelFormat::kMultiboot);
    GuestMemory mem(64 * kMiB);
    const CpuEntryState s = MultibootLoader(mem, p, {}, "").load();
    EXPECT_EQ(s.rip, 0x100008u);
    EXPECT_EQ(s.mode, CpuEntryState::Mode::kProtected32);
    EXPECT_EQ(guest_bytes(mem, 0x100000, 0x1000), text);
}

TEST(BootMultiboot, SplitModuleList)
{
    using V = std::vector<std::string>;
    EXPECT_EQ(MultibootLoader::split_module_list("a"), V{"a"});
    EXPECT_EQ(MultibootLoader::split_module_list("a x=1,b"), (V{"a x=1", "b"}));
    EXPECT_EQ(MultibootLoader::split_module_list(" a , ,b ,"), (V{"a", "b"}));
    EXPECT_EQ(MultibootLoader::split_module_list(""), V{});
}

TEST(BootMultiboot, HeaderProblems)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);

    auto segs = mb_segments();
    put32(segs[0].data, 8, 0x12345678);  // checksum
    const std::string bad_sum = dir.write("badsum", make_elf32(kEm386, 0x100000, segs));
    expect_error([&] { MultibootLoader(mem, bad_sum, {}, "").load(); },
                 {bad_sum, "Multiboot header at offset 0x1000 has a bad checksum"});
    // Without a valid header the file is just an ELF32; vmlinux refuses it.
    EXPECT_EQ(detect_kernel_format(bad_sum), KernelFormat::kElfVmlinux);
    expect_error([&] { load_kernel(mem, bad_sum, std::nullopt, ""); }, {"32-bit ELF", "no Multiboot header"});

    Bytes far = make_elf32(kEm386, 0x100000, mb_segments());
    const Bytes moved(far.begin() + 0x1000, far.begin() + 0x100c);
    std::fill(far.begin() + 0x1000, far.begin() + 0x100c, 0);
    std::copy(moved.begin(), moved.end(), far.begin() + 0x2000);  // offset 8192: too far
    const std::string far_p = dir.write("far", far);
    expect_error([&] { MultibootLoader(mem, far_p, {}, "").load(); },
                 {"no Multiboot header (magic 0x1badb002, 4-byte aligned) in the first 8192 bytes"});

    const std::string unknown_req = dir.write("req", make_elf32(kEm386, 0x100000, mb_segments(0x3 | 0x8)));
    expect_error([&] { MultibootLoader(mem, unknown_req, {}, "").load(); },
                 {"require features 0x8", "does not provide"});

    // Flag 2 (video mode) is understood and declined, not an error.
    EXPECT_NO_THROW(MultibootLoader(mem, dir.write("video", make_elf32(kEm386, 0x100000, mb_segments(0x7))), {}, "")
                        .load());

    Bytes raw = pattern(0x2000, 1);
    put_mb_header(raw, 0, 0x3);  // no address fields, not ELF
    const std::string raw_p = dir.write("raw", raw);
    expect_error([&] { MultibootLoader(mem, raw_p, {}, "").load(); }, {"no address fields", "not ELF"});
}

TEST(BootMultiboot, AddressFieldProblems)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);
    auto try_raw = [&](uint32_t header_addr, uint32_t load_addr, uint32_t load_end, uint32_t bss_end, uint32_t entry,
                       std::initializer_list<std::string> parts, size_t size = 0x3000) {
        Bytes image = pattern(size, 4);
        put_mb_header(image, 0x40, 1u << 16, header_addr, load_addr, load_end, bss_end, entry);
        const std::string p = dir.write("raw", image);
        expect_error([&] { MultibootLoader(mem, p, {}, "").load(); }, parts);
    };
    try_raw(0x100040, 0x100080, 0, 0, 0x100080, {"load_addr 0x100080 is above header_addr 0x100040"});
    try_raw(0x100100, 0x100000, 0, 0, 0x100000, {"more than the header's file offset 0x40"});
    try_raw(0x100040, 0x100000, 0x0ff000, 0, 0x100000, {"load_end_addr 0xff000 is below load_addr"});
    try_raw(0x100040, 0x100000, 0, 0x100800, 0x100000, {"bss_end_addr 0x100800 is below"});
    try_raw(0x100040, 0x100000, 0x108000, 0, 0x100000, {"truncated kernel: Multiboot image", "only 12288 bytes"});
    try_raw(0x100040, 0x100000, 0, 0, 0x200000, {"entry_addr 0x200000 is outside the loaded image"});
    try_raw(0x8000040, 0x8000000, 0, 0, 0x8000000, {"outside guest RAM"});
    try_raw(0x80040, 0x80000, 0, 0, 0x80000, {"below 0x100000"});
    // The address fields themselves cut off by the end of the file.
    Bytes tiny(0x60, 0);
    put_mb_header(tiny, 0x38, 1u << 16, 0x100038, 0x100000, 0, 0, 0x100000);
    tiny.resize(0x48);  // ends after load_addr
    const std::string tiny_p = dir.write("tiny", tiny);
    expect_error([&] { MultibootLoader(mem, tiny_p, {}, "").load(); },
                 {"truncated kernel: Multiboot header address fields"});
}

TEST(BootMultiboot, ElfProblems)
{
    TempDir dir;
    GuestMemory mem(64 * kMiB);
    const std::string arm = dir.write("arm", make_elf32(kEmArm, 0x100000, mb_segments()));
    expect_error([&] { MultibootLoader(mem, arm, {}, "").load(); }, {"ELF32 for machine 40 (ARM)"});

    auto segs = mb_segments();
    segs[1].paddr = 0x8000000;
    const std::string high = dir.write("high", make_elf32(kEm386, 0x100000, segs));
    expect_error([&] { MultibootLoader(mem, high, {}, "").load(); }, {"PT_LOAD segment 1", "outside guest RAM"});

    const std::string bad_entry = dir.write("entry", make_elf32(kEm386, 0x500000, mb_segments()));
    expect_error([&] { MultibootLoader(mem, bad_entry, {}, "").load(); }, {"entry point 0x500000"});

    const Bytes full = make_elf32(kEm386, 0x100000, mb_segments());
    const std::string cut = dir.write("cut", Bytes(full.begin(), full.begin() + 0x2000));
    expect_error([&] { MultibootLoader(mem, cut, {}, "").load(); },
                 {cut + ": truncated kernel: PT_LOAD segment 0", "only 8192 bytes"});
}

TEST(BootMultiboot, ModuleAndCommandLineProblems)
{
    TempDir dir;
    GuestMemory mem(16 * kMiB);
    const std::string k = dir.write("k", make_elf32(kEm386, 0x100000, mb_segments()));
    expect_error([&] { MultibootLoader(mem, k, {dir.path("gone") + " arg"}, "").load(); },
                 {"cannot open " + dir.path("gone") + ": No such file or directory"});
    const std::string big = dir.path("big");
    std::ofstream(big).close();
    std::filesystem::resize_file(big, 16 * kMiB);
    expect_error([&] { MultibootLoader(mem, k, {big}, "").load(); }, {big, "does not fit in guest RAM"});
    expect_error([&] { MultibootLoader(mem, k, {}, std::string(0x10000, 'c')).load(); },
                 {"command line is 65536 bytes"});
    expect_error([&] { MultibootLoader(mem, k, {dir.write("empty", {})}, "").load(); }, {"module file is empty"});
}

}  // namespace
}  // namespace kvmini
