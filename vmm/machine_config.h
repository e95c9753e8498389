// Everything `kvmini run` was asked for, as parsed from the command line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "irqchip/irqchip.h"
#include "irqchip/models/pit_8254.h"
#include "vmm/cpuid.h"

namespace kvmini {

enum class StatsFormat { kText, kJson };

struct MachineConfig {
    std::string kernel;
    std::string initrd;
    std::string cmdline;
    bool default_params = true;             // the board's Linux parameters first (linux_cmdline.h)
    uint64_t mem_mib = 256;
    unsigned cpus = 1;
    IrqChipMode irqchip = IrqChipMode::kKernel;
    PitPolicy pit_policy = PitPolicy::kReinject;  // where kvmini emulates the PIT
    std::optional<CpuProfile> cpu_profile;  // unset: chosen from the host (detect_cpu_profile)
    std::vector<std::string> disks;         // -d PATH[,ro]
    bool test_devices = false;              // QEMU-compatible isa-debug-exit, pc-testdev lines, fw_cfg
    bool stats = false;                     // print exit and interrupt statistics at the end
    StatsFormat stats_format = StatsFormat::kText;
    std::string stats_file;                 // empty: stderr
    std::string kvm_device = "/dev/kvm";
};

}  // namespace kvmini
