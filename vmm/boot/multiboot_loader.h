// Multiboot v1 (spec 0.6.96) kernels, loaded the way QEMU's -kernel does:
// ELF32 i386 (or ELF64 x86-64 with an entry below 4 GiB) via its PT_LOADs,
// or any image via the header's address fields when flag bit 16 is set.
// The boot information structure, its memory map, module list and strings go
// to layout::kMultibootInfoAddr; the kernel is entered in 32-bit protected
// mode with EAX = 0x2BADB002 and EBX = the info address (spec 3.2).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmm/boot/entry_state.h"
#include "vmm/boot/multiboot.h"
#include "vmm/guest_memory.h"

namespace kvmini {

struct MultibootHeaderLocation {
    uint64_t offset;           // file offset of the magic
    multiboot::Header header;  // fields past the end of `image_start` read as 0
};

// Scans `image_start` (the first bytes of a file; only the first 8192 are
// looked at) for a 4-byte-aligned magic whose checksum is right.
std::optional<MultibootHeaderLocation> find_multiboot_header(std::span<const uint8_t> image_start);

struct MultibootModuleRange {
    uint64_t start;  // page aligned
    uint64_t end;    // exclusive
};
struct MultibootPlacement {
    uint64_t kernel_start = 0;
    uint64_t kernel_end = 0;  // exclusive, including bss
    std::vector<MultibootModuleRange> modules;
};

class MultibootLoader {
public:
    // `modules`: one "path [args]" item per module (the whole item becomes
    // the module's string, as with GRUB's "module" and QEMU's -initrd).
    MultibootLoader(GuestMemory& mem, std::string kernel_path, std::vector<std::string> modules, std::string cmdline);
    // "a.bin x=1,b.bin" -> {"a.bin x=1", "b.bin"}; empty items are dropped.
    static std::vector<std::string> split_module_list(const std::string& comma_separated);

    CpuEntryState load();
    const MultibootPlacement& placement() const { return placement_; }

private:
    GuestMemory& mem_;
    std::string kernel_path_;
    std::vector<std::string> modules_;
    std::string cmdline_;
    MultibootPlacement placement_;
};

}  // namespace kvmini
