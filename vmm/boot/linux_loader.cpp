#include "vmm/boot/linux_loader.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "devices/le.h"
#include "vmm/boot/boot_file.h"
#include "vmm/boot/boot_params.h"
#include "vmm/boot/elf_image.h"
#include "vmm/boot/multiboot_loader.h"
#include "vmm/boot/x86_boot_setup.h"
#include "vmm/error.h"
#include "vmm/memory_layout.h"

namespace kvmini {

namespace lb = linux_boot;
using boot_util::align_down;
using boot_util::align_up;
using boot_util::BootFile;
using boot_util::hex;
using boot_util::kPageSize;

namespace {

static_assert(layout::kBootParamsAddr + sizeof(lb::BootParams) <= layout::kPml4Addr,
              "boot_params runs into the page tables");

std::string protocol_string(uint16_t version)
{
    char buf[16];
    std::snprintf(buf, sizeof buf, "%u.%02u", version >> 8, version & 0xff);
    return buf;
}

// cmdline_size counts characters without the terminating NUL (boot.rst
// "cmdline_size"); layout::kCmdlineMax is our buffer, NUL included.
void check_cmdline(const std::string& cmdline, uint64_t max_chars, const std::string& kernel_path)
{
    const uint64_t limit = std::min<uint64_t>(max_chars, layout::kCmdlineMax - 1);
    if (cmdline.size() > limit)
        throw Error("kernel command line is " + std::to_string(cmdline.size()) + " bytes but " + kernel_path +
                    " accepts at most " + std::to_string(limit) +
                    (limit == max_chars ? " (its cmdline_size)" : " (kvmini's command line buffer)"));
    if (cmdline.find('\0') != std::string::npos) throw Error("kernel command line contains a NUL byte");
}

void write_cmdline(GuestMemory& mem, const std::string& cmdline)
{
    if (!mem.write(layout::kCmdlineAddr, cmdline.c_str(), cmdline.size() + 1))
        throw Error("guest RAM does not cover the command line buffer at " + hex(layout::kCmdlineAddr));
}

void fill_e820(lb::BootParams& bp, const GuestMemory& mem)
{
    const std::vector<E820Entry> map = mem.e820();
    if (map.size() > lb::kE820MaxEntries)
        throw Error("guest memory map has " + std::to_string(map.size()) + " entries, boot_params holds " +
                    std::to_string(lb::kE820MaxEntries));
    for (size_t i = 0; i < map.size(); ++i) bp.e820_table[i] = {map[i].addr, map[i].size, map[i].type};
    bp.e820_entries = static_cast<uint8_t>(map.size());
}

// Puts the initrd page-aligned as high as possible below
// min(addr_max + 1, end of low RAM) and not below kernel_end (boot.rst
// "initrd_addr_max": the highest address the initrd may occupy).
KernelPlacement load_initrd(GuestMemory& mem, const std::string& path, uint64_t kernel_end, uint64_t addr_max,
                            KernelPlacement placement)
{
    BootFile f(path, "initrd");
    const uint64_t limit = std::min<uint64_t>(addr_max + 1, boot_util::low_ram_end(mem));
    const uint64_t lowest = align_up(kernel_end, kPageSize);
    const uint64_t size = f.size();
    if (size > limit || align_down(limit - size, kPageSize) < lowest)
        f.fail("initrd of " + std::to_string(size) + " bytes does not fit in guest RAM between the kernel end " +
               hex(lowest) + " and " + hex(limit) + " (the lower of initrd_addr_max + 1 and the end of RAM below " +
               "the MMIO hole); give the guest more memory or use a smaller initrd");
    const uint64_t addr = align_down(limit - size, kPageSize);
    f.copy_to_guest(mem, addr, 0, size, "initrd");
    placement.initrd_addr = addr;
    placement.initrd_size = size;
    return placement;
}

void set_initrd(lb::BootParams& bp, const KernelPlacement& p)
{
    bp.hdr.ramdisk_image = static_cast<uint32_t>(p.initrd_addr);
    bp.hdr.ramdisk_size = static_cast<uint32_t>(p.initrd_size);
    bp.ext_ramdisk_image = static_cast<uint32_t>(p.initrd_addr >> 32);
    bp.ext_ramdisk_size = static_cast<uint32_t>(p.initrd_size >> 32);
}

// The common tail of both Linux loaders: the zero page, the command line, the
// boot CPU tables, and the 64-bit entry (boot.rst "64-bit Boot Protocol").
CpuEntryState enter_linux64(GuestMemory& mem, lb::BootParams& bp, const std::string& cmdline, uint64_t entry)
{
    bp.hdr.type_of_loader = lb::kLoaderTypeUndefined;
    bp.hdr.cmd_line_ptr = static_cast<uint32_t>(layout::kCmdlineAddr);
    bp.ext_cmd_line_ptr = static_cast<uint32_t>(layout::kCmdlineAddr >> 32);
    fill_e820(bp, mem);
    write_cmdline(mem, cmdline);
    if (!mem.write_obj(layout::kBootParamsAddr, bp))
        throw Error("guest RAM does not cover boot_params at " + hex(layout::kBootParamsAddr));

    CpuEntryState s;
    s.mode = CpuEntryState::Mode::kLong64;
    s.cr3 = boot_tables::write_boot_cpu_tables(mem);
    s.rip = entry;
    s.rsi = layout::kBootParamsAddr;
    return s;
}

// File / zero-page offsets of setup header fields (boot.rst header table).
#define KVMINI_HDR_OFFSET(field) (lb::kSetupHeaderOffset + offsetof(lb::SetupHeader, field))
constexpr uint64_t kBootFlagAt = KVMINI_HDR_OFFSET(boot_flag);
constexpr uint64_t kJumpAt = KVMINI_HDR_OFFSET(jump);
constexpr uint64_t kHeaderMagicAt = KVMINI_HDR_OFFSET(header);
constexpr uint64_t kVersionAt = KVMINI_HDR_OFFSET(version);
constexpr uint64_t kAfterVersion = kVersionAt + sizeof(uint16_t);
constexpr uint64_t kHardwareSubarchAt = KVMINI_HDR_OFFSET(hardware_subarch);
constexpr uint64_t kHandoverOffsetAt = KVMINI_HDR_OFFSET(handover_offset);
#undef KVMINI_HDR_OFFSET

bool is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

const char* kernel_format_name(KernelFormat format)
{
    switch (format) {
    case KernelFormat::kBzImage: return "bzImage";
    case KernelFormat::kElfVmlinux: return "ELF vmlinux";
    case KernelFormat::kMultiboot: return "Multiboot";
    case KernelFormat::kUnknown: break;
    }
    return "unknown";
}

KernelFormat detect_kernel_format(const std::string& path)
{
    BootFile f(path, "kernel");
    const std::vector<uint8_t> head = f.read_prefix(multiboot::kSearchBytes);
    if (head.size() >= kHeaderMagicAt + sizeof(uint32_t)) {
        const uint16_t boot_flag = le::load16(&head[kBootFlagAt]);
        const uint32_t magic = le::load32(&head[kHeaderMagicAt]);
        if (boot_flag == lb::kBootFlag && magic == lb::kHeaderMagic) return KernelFormat::kBzImage;
    }
    if (find_multiboot_header(head)) return KernelFormat::kMultiboot;
    if (boot_util::has_elf_magic(head)) return KernelFormat::kElfVmlinux;
    return KernelFormat::kUnknown;
}

// ---------------------------------------------------------------- bzImage

BzImageLoader::BzImageLoader(GuestMemory& mem, std::string kernel_path, std::optional<std::string> initrd_path,
                             std::string cmdline)
    : mem_(mem), kernel_path_(std::move(kernel_path)), initrd_path_(std::move(initrd_path)),
      cmdline_(std::move(cmdline))
{
}

CpuEntryState BzImageLoader::load()
{
    BootFile f(kernel_path_, "kernel");
    constexpr uint64_t kHdrEnd = lb::kSetupHeaderOffset + sizeof(lb::SetupHeader);

    // boot.rst "The Real-Mode Kernel Header": boot_flag, "HdrS", version.
    f.require(0, kJumpAt, "boot sector (up to boot_flag at 0x1fe)");
    const std::vector<uint8_t> head = f.read_prefix(kHdrEnd);
    lb::SetupHeader file_hdr{};
    std::memcpy(&file_hdr, head.data() + lb::kSetupHeaderOffset,
                std::min<uint64_t>(sizeof file_hdr, head.size() - lb::kSetupHeaderOffset));
    if (file_hdr.boot_flag != lb::kBootFlag)
        f.fail("not a bzImage: boot_flag at 0x1fe is " + hex(file_hdr.boot_flag) + ", expected 0xaa55");
    f.require(0, kVersionAt, "setup header magic \"HdrS\" at 0x202");
    if (file_hdr.header != lb::kHeaderMagic)
        f.fail("not a bzImage: no \"HdrS\" magic at 0x202 (found " + hex(file_hdr.header) +
               "); pre-2.00 zImage kernels are not supported");
    f.require(0, kAfterVersion, "setup header version at 0x206");
    if (file_hdr.version < lb::kMinProtocol)
        f.fail("boot protocol version " + protocol_string(file_hdr.version) + " is too old, kvmini needs >= " +
               protocol_string(lb::kMinProtocol));

    // The header runs to 0x202 + the jump's offset byte (boot.rst "64-bit Boot
    // Protocol"); it must at least hold the fields this protocol version has.
    const uint64_t hdr_end = lb::kJumpEndOffset + head[lb::kHeaderEndByteOffset];
    const uint64_t needed_end = file_hdr.version >= lb::kInitSizeProtocol ? kHandoverOffsetAt : kHardwareSubarchAt;
    if (hdr_end < needed_end)
        f.fail("setup header ends at " + hex(hdr_end) + " (jump offset byte at 0x201) but protocol " +
               protocol_string(file_hdr.version) + " fields run to " + hex(needed_end));
    const uint64_t copy_end = std::min(hdr_end, kHdrEnd);
    f.require(lb::kSetupHeaderOffset, copy_end - lb::kSetupHeaderOffset, "setup header");
    // Fields beyond the header's own end are not the kernel's: zero them.
    if (copy_end < kHdrEnd)
        std::memset(reinterpret_cast<uint8_t*>(&file_hdr) + (copy_end - lb::kSetupHeaderOffset), 0, kHdrEnd - copy_end);

    if (!(file_hdr.loadflags & lb::kLoadedHigh))
        f.fail("loadflags " + hex(file_hdr.loadflags) + " lack LOADED_HIGH: a zImage, not a bzImage");
    if (file_hdr.version < lb::kXloadflagsProtocol)
        f.fail("boot protocol " + protocol_string(file_hdr.version) +
               " has no xloadflags, so no 64-bit entry point (needs >= 2.12)");
    if (!(file_hdr.xloadflags & lb::kXlfKernel64))
        f.fail("xloadflags " + hex(file_hdr.xloadflags) + " lack XLF_KERNEL_64: no 64-bit entry point");

    // boot.rst "Loading The Rest of The Kernel".
    const uint64_t setup_sects = file_hdr.setup_sects ? file_hdr.setup_sects : lb::kDefaultSetupSects;
    const uint64_t pm_offset = (setup_sects + 1) * lb::kSectorSize;
    f.require(pm_offset, uint64_t{file_hdr.syssize} * lb::kSyssizeUnit,
              "protected-mode kernel (setup_sects " + std::to_string(setup_sects) + ", syssize " +
                  hex(file_hdr.syssize) + " paragraphs)");
    f.require(pm_offset, lb::kEntry64Offset + 1, "64-bit entry point at protected-mode offset 0x200");
    if (file_hdr.version >= lb::kPayloadProtocol && file_hdr.payload_length)
        f.require(pm_offset + file_hdr.payload_offset, file_hdr.payload_length, "compressed payload");
    const uint64_t pm_size = f.size() - pm_offset;

    check_cmdline(cmdline_, file_hdr.cmdline_size, kernel_path_);

    // Where the kernel goes, and what it occupies while booting (boot.rst
    // "pref_address", "init_size": runtime_start from load address).
    const uint64_t ram_end = boot_util::low_ram_end(mem_);
    const bool relocatable = file_hdr.relocatable_kernel != 0;
    const bool has_init_size = file_hdr.version >= lb::kInitSizeProtocol;
    const uint64_t align = is_pow2(file_hdr.kernel_alignment) ? file_hdr.kernel_alignment : 1;
    auto runtime_end = [&](uint64_t load) {
        uint64_t runtime_start = load;
        if (has_init_size) runtime_start = relocatable ? align_up(load, align) : (file_hdr.pref_address ? file_hdr.pref_address : load);
        return std::max(load + pm_size, runtime_start + (has_init_size ? file_hdr.init_size : 0));
    };
    uint64_t load_addr = layout::kHighMemStart;
    const uint64_t pref = file_hdr.pref_address;
    if (has_init_size && relocatable && pref > layout::kHighMemStart && pref % align == 0 &&
        pref < ram_end && runtime_end(pref) <= ram_end)
        load_addr = pref;
    const uint64_t kernel_end = runtime_end(load_addr);
    if (kernel_end > ram_end)
        f.fail("kernel needs guest RAM up to " + hex(kernel_end) + " (protected-mode code " + hex(pm_size) +
               " bytes, init_size " + hex(file_hdr.init_size) + ") but RAM below the MMIO hole ends at " +
               hex(ram_end));

    placement_ = {load_addr, kernel_end, 0, 0};
    f.copy_to_guest(mem_, load_addr, pm_offset, pm_size, "protected-mode kernel");
    if (initrd_path_) placement_ = load_initrd(mem_, *initrd_path_, kernel_end, file_hdr.initrd_addr_max, placement_);

    // The zero page starts as all zeros plus a copy of the file's setup header
    // (boot.rst "64-bit Boot Protocol"); then the fields a loader writes.
    lb::BootParams bp{};
    bp.hdr = file_hdr;
    bp.hdr.vid_mode = lb::kVidModeNormal;
    bp.hdr.code32_start = static_cast<uint32_t>(load_addr);
    set_initrd(bp, placement_);
    return enter_linux64(mem_, bp, cmdline_, load_addr + lb::kEntry64Offset);
}

// ---------------------------------------------------------------- vmlinux

VmlinuxLoader::VmlinuxLoader(GuestMemory& mem, std::string kernel_path, std::optional<std::string> initrd_path,
                             std::string cmdline)
    : mem_(mem), kernel_path_(std::move(kernel_path)), initrd_path_(std::move(initrd_path)),
      cmdline_(std::move(cmdline))
{
}

CpuEntryState VmlinuxLoader::load()
{
    BootFile f(kernel_path_, "kernel");
    const boot_util::ElfImage elf = boot_util::read_elf(f);
    if (elf.elf_class != ELFCLASS64)
        f.fail("32-bit ELF (" + std::string(boot_util::elf_machine_name(elf.machine)) +
               ") with no Multiboot header, not an x86-64 vmlinux");
    if (elf.machine != EM_X86_64)
        f.fail("ELF for machine " + std::to_string(elf.machine) + " (" + boot_util::elf_machine_name(elf.machine) +
               "), not x86-64");
    if (elf.type != ET_EXEC)
        f.fail("ELF type " + std::to_string(elf.type) + " (" + boot_util::elf_type_name(elf.type) +
               "), not an executable (ET_EXEC) as a vmlinux is");

    const boot_util::PhysRange range = boot_util::check_elf_segments(f, elf, mem_, layout::kHighMemStart);
    const uint64_t entry = boot_util::elf_entry_physical(f, elf);
    check_cmdline(cmdline_, layout::kCmdlineMax - 1, kernel_path_);

    placement_ = {range.start, range.end, 0, 0};
    boot_util::load_elf_segments(f, elf, mem_);
    if (initrd_path_) placement_ = load_initrd(mem_, *initrd_path_, range.end, lb::kVmlinuxInitrdAddrMax, placement_);

    // No setup header in a vmlinux: build one saying what a 2.15 bzImage's
    // would about this loader's environment (boot.rst header field table).
    lb::BootParams bp{};
    bp.hdr.boot_flag = lb::kBootFlag;
    bp.hdr.header = lb::kHeaderMagic;
    bp.hdr.version = lb::kProtocolWeSpeak;
    bp.hdr.vid_mode = lb::kVidModeNormal;
    bp.hdr.loadflags = lb::kLoadedHigh;
    bp.hdr.code32_start = static_cast<uint32_t>(range.start);
    bp.hdr.initrd_addr_max = lb::kVmlinuxInitrdAddrMax;
    bp.hdr.kernel_alignment = lb::kVmlinuxKernelAlignment;
    bp.hdr.xloadflags = lb::kXlfKernel64;
    bp.hdr.cmdline_size = static_cast<uint32_t>(layout::kCmdlineMax - 1);
    bp.hdr.init_size = static_cast<uint32_t>(range.end - range.start);
    set_initrd(bp, placement_);
    return enter_linux64(mem_, bp, cmdline_, entry);
}

// ---------------------------------------------------------------- dispatch

CpuEntryState load_kernel(GuestMemory& mem, const std::string& kernel_path, const std::optional<std::string>& initrd,
                          const std::string& cmdline, KernelPlacement* placement)
{
    CpuEntryState entry;
    KernelPlacement where;
    switch (detect_kernel_format(kernel_path)) {
    case KernelFormat::kBzImage: {
        BzImageLoader loader(mem, kernel_path, initrd, cmdline);
        entry = loader.load();
        where = loader.placement();
        break;
    }
    case KernelFormat::kElfVmlinux: {
        VmlinuxLoader loader(mem, kernel_path, initrd, cmdline);
        entry = loader.load();
        where = loader.placement();
        break;
    }
    case KernelFormat::kMultiboot: {
        MultibootLoader loader(mem, kernel_path,
                               initrd ? MultibootLoader::split_module_list(*initrd) : std::vector<std::string>{},
                               cmdline);
        entry = loader.load();
        const MultibootPlacement& mb = loader.placement();
        where.kernel_start = mb.kernel_start;
        where.kernel_end = mb.kernel_end;
        if (!mb.modules.empty()) {
            where.initrd_addr = mb.modules.front().start;
            where.initrd_size = mb.modules.front().end - mb.modules.front().start;
        }
        break;
    }
    case KernelFormat::kUnknown:
        throw Error(kernel_path + ": not a kernel image: no Linux setup header (\"HdrS\" at 0x202), no ELF magic " +
                    "and no Multiboot header in the first 8192 bytes");
    }
    if (placement) *placement = where;
    return entry;
}

}  // namespace kvmini
