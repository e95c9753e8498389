// The command line a guest gets, by kernel format.
//
// Linux, as kvmtool composes it: first what
// kvmini's board needs said (its console on the 16550A at COM1, early output
// there too, reboot through the i8042 reset, which ends kvmini, and a reboot
// on panic rather than a hang), then the user's -p, whose later words win
// where a parameter appears twice; then what the CPU profile must switch off
// (cpuid.h). --no-default-params leaves the board's part out.
#pragma once

#include <string>

#include "vmm/cpuid.h"

namespace kvmini {

inline constexpr const char* kBoardLinuxParams = "console=ttyS0 earlyprintk=serial reboot=k panic=-1";

inline std::string linux_cmdline(const std::string& user, bool board_defaults, CpuProfile profile)
{
    std::string cmdline = board_defaults ? std::string(kBoardLinuxParams) : std::string();
    if (!user.empty()) cmdline += (cmdline.empty() ? "" : " ") + user;
    return linux_cmdline_for_profile(cmdline, profile);
}

// Multiboot, as GRUB and QEMU's -kernel pass it (Multiboot 0.6.96 3.3: the
// "command line" of the boot module): the kernel's path, a space, then -p.
// Kernels take the first word as their own name.
inline std::string multiboot_cmdline(const std::string& kernel_path, const std::string& user)
{
    return user.empty() ? kernel_path : kernel_path + " " + user;
}

}  // namespace kvmini
