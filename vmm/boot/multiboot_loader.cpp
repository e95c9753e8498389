#include "vmm/boot/multiboot_loader.h"

#include <elf.h>

#include <algorithm>
#include <cstring>

#include "devices/le.h"
#include "vmm/boot/boot_file.h"
#include "vmm/boot/elf_image.h"
#include "vmm/boot/x86_boot_setup.h"
#include "vmm/error.h"
#include "vmm/memory_layout.h"

namespace kvmini {

namespace mb = multiboot;
using boot_util::align_up;
using boot_util::BootFile;
using boot_util::hex;

namespace {

constexpr char kBootLoaderName[] = "kvmini";
// The info structure and everything it points to live in
// [kMultibootInfoAddr, kEbdaStart): nothing else of ours is there.
constexpr uint64_t kInfoAreaBytes = layout::kEbdaStart - layout::kMultibootInfoAddr;
constexpr uint64_t k4GiB = 1ull << 32;
static_assert(layout::kMultibootInfoAddr >= layout::kCmdlineAddr + layout::kCmdlineMax);

// magic + flags + checksum of a header candidate at p (spec 3.1.1: 0 mod 2^32).
uint32_t magic_fields_sum(const uint8_t* p)
{
    return static_cast<uint32_t>(le::load32(p) + le::load32(p + 4) + le::load32(p + 8));
}

// Lays out the info structure and what it points to in a host buffer that
// mirrors guest memory from kMultibootInfoAddr, then writes it in one go.
class InfoArea {
public:
    // Reserves `len` bytes aligned to `align`; returns the guest address.
    uint32_t reserve(uint64_t len, uint64_t align)
    {
        const uint64_t off = align_up(buf_.size(), align);
        buf_.resize(off + len);
        return static_cast<uint32_t>(layout::kMultibootInfoAddr + off);
    }
    uint32_t add_string(const std::string& s)
    {
        const uint32_t addr = reserve(s.size() + 1, 1);
        std::memcpy(at(addr), s.c_str(), s.size() + 1);
        return addr;
    }
    template <typename T>
    void put(uint32_t addr, const T& v)
    {
        std::memcpy(at(addr), &v, sizeof v);
    }
    uint64_t size() const { return buf_.size(); }
    void write(GuestMemory& mem, const std::string& kernel_path, size_t modules) const
    {
        if (buf_.size() > kInfoAreaBytes)
            throw Error(kernel_path + ": Multiboot information (command line, " + std::to_string(modules) +
                        " module strings, memory map) needs " + std::to_string(buf_.size()) + " bytes, more than the " +
                        std::to_string(kInfoAreaBytes) + " at " + hex(layout::kMultibootInfoAddr));
        if (!mem.write(layout::kMultibootInfoAddr, buf_.data(), buf_.size()))
            throw Error("guest RAM does not cover the Multiboot information at " + hex(layout::kMultibootInfoAddr));
    }

private:
    uint8_t* at(uint32_t addr) { return buf_.data() + (addr - layout::kMultibootInfoAddr); }
    std::vector<uint8_t> buf_;
};

struct LoadedImage {
    uint64_t start;
    uint64_t end;
    uint64_t entry;
};

// Spec 3.1.3: with flag 16 the header's address fields say where the image
// goes, whatever the file format.
LoadedImage load_by_address_fields(const BootFile& f, const MultibootHeaderLocation& loc, GuestMemory& mem)
{
    const mb::Header& h = loc.header;
    if (loc.offset + mb::kAddressFieldsEnd > std::min<uint64_t>(f.size(), mb::kSearchBytes)) {
        f.require(loc.offset, mb::kAddressFieldsEnd, "Multiboot header address fields");
        f.fail("Multiboot header address fields cross the 8192-byte limit of the header search");
    }
    if (h.load_addr > h.header_addr)
        f.fail("Multiboot load_addr " + hex(h.load_addr) + " is above header_addr " + hex(h.header_addr));
    if (h.header_addr - h.load_addr > loc.offset)
        f.fail("Multiboot header_addr - load_addr = " + hex(h.header_addr - h.load_addr) +
               " is more than the header's file offset " + hex(loc.offset));
    const uint64_t file_off = loc.offset - (h.header_addr - h.load_addr);
    const uint64_t load_end = h.load_end_addr ? h.load_end_addr : h.load_addr + (f.size() - file_off);
    if (load_end < h.load_addr)
        f.fail("Multiboot load_end_addr " + hex(h.load_end_addr) + " is below load_addr " + hex(h.load_addr));
    const uint64_t bss_end = h.bss_end_addr ? h.bss_end_addr : load_end;
    if (bss_end < load_end)
        f.fail("Multiboot bss_end_addr " + hex(h.bss_end_addr) + " is below the end of the loaded image " +
               hex(load_end));
    f.require(file_off, load_end - h.load_addr, "Multiboot image load_addr.." + hex(load_end));
    if (h.entry_addr < h.load_addr || h.entry_addr >= load_end)
        f.fail("Multiboot entry_addr " + hex(h.entry_addr) + " is outside the loaded image " + hex(h.load_addr) +
               ".." + hex(load_end));
    if (!mem.contains(h.load_addr, bss_end - h.load_addr))
        f.fail("Multiboot image " + hex(h.load_addr) + ".." + hex(bss_end) + " is outside guest RAM (" +
               std::to_string(mem.size() >> 20) + " MiB)");
    if (h.load_addr < layout::kHighMemStart)
        f.fail("Multiboot image at " + hex(h.load_addr) + " is below " + hex(layout::kHighMemStart) +
               ", where kvmini keeps the boot structures");
    f.copy_to_guest(mem, h.load_addr, file_off, load_end - h.load_addr, "Multiboot image");
    mem.fill(load_end, 0, bss_end - load_end);
    return {h.load_addr, bss_end, h.entry_addr};
}

LoadedImage load_elf(const BootFile& f, GuestMemory& mem)
{
    const boot_util::ElfImage elf = boot_util::read_elf(f);
    const bool i386 = elf.elf_class == ELFCLASS32 && elf.machine == EM_386;
    const bool x86_64 = elf.elf_class == ELFCLASS64 && elf.machine == EM_X86_64;
    if (!i386 && !x86_64)
        f.fail("ELF" + std::string(elf.elf_class == ELFCLASS32 ? "32" : "64") + " for machine " +
               std::to_string(elf.machine) + " (" + boot_util::elf_machine_name(elf.machine) +
               "); a Multiboot kernel must be i386 ELF32 or x86-64 ELF64");
    if (elf.type != ET_EXEC)
        f.fail("ELF type " + std::to_string(elf.type) + " (" + boot_util::elf_type_name(elf.type) +
               "), not an executable (ET_EXEC)");
    const boot_util::PhysRange range = boot_util::check_elf_segments(f, elf, mem, layout::kHighMemStart);
    if (range.end > k4GiB) f.fail("PT_LOAD segments reach " + hex(range.end) + ", beyond 32-bit addressing");
    const uint64_t entry = boot_util::elf_entry_physical(f, elf);
    if (entry >= k4GiB) f.fail("ELF entry point " + hex(entry) + " is not reachable in 32-bit protected mode");
    boot_util::load_elf_segments(f, elf, mem);
    return {range.start, range.end, entry};
}

}  // namespace

std::optional<MultibootHeaderLocation> find_multiboot_header(std::span<const uint8_t> image_start)
{
    const uint64_t n = std::min<uint64_t>(image_start.size(), mb::kSearchBytes);
    for (uint64_t off = 0; off + mb::kMagicFieldsBytes <= n; off += mb::kHeaderAlign) {
        const uint32_t magic = le::load32(image_start.data() + off);
        if (magic != mb::kHeaderMagic) continue;
        if (magic_fields_sum(image_start.data() + off) != 0) continue;
        MultibootHeaderLocation loc{off, {}};
        std::memcpy(&loc.header, image_start.data() + off, std::min<uint64_t>(sizeof loc.header, n - off));
        return loc;
    }
    return std::nullopt;
}

MultibootLoader::MultibootLoader(GuestMemory& mem, std::string kernel_path, std::vector<std::string> modules,
                                 std::string cmdline)
    : mem_(mem), kernel_path_(std::move(kernel_path)), modules_(std::move(modules)), cmdline_(std::move(cmdline))
{
}

std::vector<std::string> MultibootLoader::split_module_list(const std::string& comma_separated)
{
    std::vector<std::string> items;
    size_t pos = 0;
    while (pos <= comma_separated.size()) {
        size_t comma = comma_separated.find(',', pos);
        if (comma == std::string::npos) comma = comma_separated.size();
        std::string item = comma_separated.substr(pos, comma - pos);
        const size_t first = item.find_first_not_of(' ');
        const size_t last = item.find_last_not_of(' ');
        if (first != std::string::npos) items.push_back(item.substr(first, last - first + 1));
        pos = comma + 1;
    }
    return items;
}

CpuEntryState MultibootLoader::load()
{
    BootFile f(kernel_path_, "kernel");
    const std::vector<uint8_t> head = f.read_prefix(mb::kSearchBytes);
    const std::optional<MultibootHeaderLocation> loc = find_multiboot_header(head);
    if (!loc) {
        for (uint64_t off = 0; off + mb::kMagicFieldsBytes <= head.size(); off += mb::kHeaderAlign)
            if (le::load32(head.data() + off) == mb::kHeaderMagic)
                f.fail("Multiboot header at offset " + hex(off) + " has a bad checksum: magic + flags + checksum = " +
                       hex(magic_fields_sum(head.data() + off)) +
                       ", not 0");
        f.fail("no Multiboot header (magic 0x1badb002, 4-byte aligned) in the first 8192 bytes");
    }
    // Spec 3.1.2: requirement bits we do not know are fatal. Bit 2 (a video
    // mode preference) we understand and decline: there is no framebuffer.
    const uint32_t understood = mb::kFlagPageAlignModules | mb::kFlagMemoryInfo | mb::kFlagVideoMode;
    const uint32_t unsupported = loc->header.flags & mb::kRequiredFlagsMask & ~understood;
    if (unsupported)
        f.fail("Multiboot header flags " + hex(loc->header.flags) + " require features " + hex(unsupported) +
               " that kvmini does not provide");
    if (cmdline_.size() + 1 > layout::kCmdlineMax)
        throw Error("kernel command line is " + std::to_string(cmdline_.size()) + " bytes, kvmini accepts at most " +
                    std::to_string(layout::kCmdlineMax - 1));

    const bool address_fields = loc->header.flags & mb::kFlagAddressFields;
    if (!address_fields && !boot_util::has_elf_magic(head))
        f.fail("Multiboot header has no address fields (flag bit 16 clear) and the file is not ELF, so there is "
               "no way to know where it loads");
    const LoadedImage image = address_fields ? load_by_address_fields(f, *loc, mem_) : load_elf(f, mem_);
    placement_ = {image.start, image.end, {}};

    // Modules: page aligned (satisfies flag bit 0), one after another above
    // the kernel.
    const uint64_t ram_end = boot_util::low_ram_end(mem_);
    uint64_t next = align_up(image.end, mb::kModuleAlign);
    for (const std::string& item : modules_) {
        BootFile m(item.substr(0, item.find(' ')), "Multiboot module");
        if (next > ram_end || m.size() > ram_end - next)
            m.fail("Multiboot module of " + std::to_string(m.size()) + " bytes does not fit in guest RAM at " +
                   hex(next) + " (RAM below the MMIO hole ends at " + hex(ram_end) + ")");
        m.copy_to_guest(mem_, next, 0, m.size(), "Multiboot module");
        placement_.modules.push_back({next, next + m.size()});
        next = align_up(next + m.size(), mb::kModuleAlign);
    }

    // Spec 3.3: the information structure, then what it points to.
    InfoArea area;
    const uint32_t info_addr = area.reserve(sizeof(mb::Info), 8);
    mb::Info info{};
    info.flags = mb::kInfoMemory | mb::kInfoCmdline | mb::kInfoModules | mb::kInfoMemoryMap | mb::kInfoBootLoaderName;

    const std::vector<E820Entry> map = mem_.e820();
    info.mmap_length = static_cast<uint32_t>(map.size() * sizeof(mb::MmapEntry));
    info.mmap_addr = area.reserve(info.mmap_length, 8);
    for (size_t i = 0; i < map.size(); ++i) {
        const uint32_t type = map[i].type == E820Entry::kRam ? mb::kMmapAvailable : mb::kMmapReserved;
        area.put(static_cast<uint32_t>(info.mmap_addr + i * sizeof(mb::MmapEntry)),
                 mb::MmapEntry{mb::kMmapEntrySize, map[i].addr, map[i].size, type});
        // mem_lower: RAM from 0; mem_upper: RAM from 1 MiB to the first hole.
        if (map[i].type == E820Entry::kRam && map[i].addr == 0)
            info.mem_lower = static_cast<uint32_t>(std::min<uint64_t>(map[i].size >> 10, 640));
        if (map[i].type == E820Entry::kRam && map[i].addr == layout::kHighMemStart)
            info.mem_upper = static_cast<uint32_t>(map[i].size >> 10);
    }

    info.mods_count = static_cast<uint32_t>(modules_.size());
    info.mods_addr = area.reserve(modules_.size() * sizeof(mb::ModuleEntry), 16);
    for (size_t i = 0; i < modules_.size(); ++i) {
        const mb::ModuleEntry e{static_cast<uint32_t>(placement_.modules[i].start),
                                static_cast<uint32_t>(placement_.modules[i].end), area.add_string(modules_[i]), 0};
        area.put(static_cast<uint32_t>(info.mods_addr + i * sizeof(mb::ModuleEntry)), e);
    }
    info.cmdline = area.add_string(cmdline_);
    info.boot_loader_name = area.add_string(kBootLoaderName);
    area.put(info_addr, info);
    area.write(mem_, kernel_path_, modules_.size());

    boot_tables::write_boot_gdt(mem_);
    boot_tables::write_boot_idt(mem_);

    // Spec 3.2 "Machine state".
    CpuEntryState s;
    s.mode = CpuEntryState::Mode::kProtected32;
    s.rip = image.entry;
    s.rax = mb::kBootloaderMagic;
    s.rbx = info_addr;
    return s;
}

}  // namespace kvmini
