// Loading a kernel into guest RAM: Linux bzImage and vmlinux (ELF64) via the
// 64-bit boot protocol (boot.rst "64-bit Boot Protocol"), and, through
// load_kernel(), Multiboot kernels (multiboot_loader.h).
//
// A loader validates the file, copies the kernel, initrd and command line to
// guest RAM, writes boot_params at layout::kBootParamsAddr and the boot CPU
// tables (x86_boot_setup.h), and returns the boot vCPU's entry state. It makes
// no KVM calls. Every problem with the inputs is a one-line kvmini::Error
// naming the file: "cannot open PATH: No such file or directory",
// "PATH: kernel file is empty", "PATH: truncated kernel: ...",
// "PATH: not a bzImage: ...", "PATH: ELF for machine 183 (AArch64), not x86-64", ...
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "vmm/boot/entry_state.h"
#include "vmm/guest_memory.h"

namespace kvmini {

enum class KernelFormat {
    kUnknown,
    kBzImage,     // Linux boot protocol image ("HdrS" at 0x202)
    kElfVmlinux,  // an ELF file without a Multiboot header (VmlinuxLoader checks the rest)
    kMultiboot,   // a Multiboot v1 header in the first 8192 bytes
};
const char* kernel_format_name(KernelFormat format);

// Looks at the start of the file. Throws Error if it cannot be opened or is
// empty; anything else unrecognised is kUnknown.
KernelFormat detect_kernel_format(const std::string& path);

// Where a loader put things (guest-physical), for logs and tests.
struct KernelPlacement {
    uint64_t kernel_start = 0;
    uint64_t kernel_end = 0;   // exclusive; includes bss / init_size
    uint64_t initrd_addr = 0;  // 0 if none
    uint64_t initrd_size = 0;
};

// bzImage: protocol >= 2.06, LOADED_HIGH, XLF_KERNEL_64. The protected-mode
// part goes to 1 MiB, or to pref_address for a relocatable kernel when it
// fits there; entry is load address + 0x200 in 64-bit mode, rsi = boot_params.
class BzImageLoader {
public:
    BzImageLoader(GuestMemory& mem, std::string kernel_path, std::optional<std::string> initrd_path,
                  std::string cmdline);
    CpuEntryState load();
    const KernelPlacement& placement() const { return placement_; }

private:
    GuestMemory& mem_;
    std::string kernel_path_;
    std::optional<std::string> initrd_path_;
    std::string cmdline_;
    KernelPlacement placement_;
};

// vmlinux: ELF64, x86-64, ET_EXEC. PT_LOADs go to their p_paddr (at or above
// 1 MiB, inside RAM), bss is zeroed, entry is e_entry (translated through the
// PT_LOADs if it is a kernel virtual address). boot_params is built from
// scratch (there is no setup header in a vmlinux).
class VmlinuxLoader {
public:
    VmlinuxLoader(GuestMemory& mem, std::string kernel_path, std::optional<std::string> initrd_path,
                  std::string cmdline);
    CpuEntryState load();
    const KernelPlacement& placement() const { return placement_; }

private:
    GuestMemory& mem_;
    std::string kernel_path_;
    std::optional<std::string> initrd_path_;
    std::string cmdline_;
    KernelPlacement placement_;
};

// Detects the format and runs the matching loader. For Multiboot kernels
// `initrd` is the module list: comma-separated "path [args]" items.
// Throws Error "PATH: not a kernel image: ..." for kUnknown.
CpuEntryState load_kernel(GuestMemory& mem, const std::string& kernel_path, const std::optional<std::string>& initrd,
                          const std::string& cmdline, KernelPlacement* placement = nullptr);

}  // namespace kvmini
