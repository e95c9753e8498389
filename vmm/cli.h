// The command line (CLI11), close to kvmtool's:
//   kvmini run -k KERNEL [-i INITRD] [-p "PARAMS"] [-m MiB] [-c N]
//              [--irqchip kernel|split|user] [--cpu-profile host|safe] ...
//   kvmini version
#pragma once

#include <ostream>
#include <string>

#include "vmm/machine_config.h"

namespace kvmini {

struct CliResult {
    enum class Action { kRun, kVersion, kExit };
    Action action = Action::kExit;
    int exit_status = 0;          // for kExit: 0 after --help, non-zero after an error
    MachineConfig config;         // for kRun
    std::string log_level = "info";
};

// Parses argv; help and errors are written to `out`/`err`.
CliResult parse_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

inline constexpr const char* kVersion = "0.1.0";

}  // namespace kvmini
