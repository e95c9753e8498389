#include "vmm/cli.h"

#include <CLI/CLI.hpp>

#include <map>

#include "vmm/guest_cmdline.h"

namespace kvmini {

CliResult parse_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err)
{
    CliResult result;
    MachineConfig& cfg = result.config;

    CLI::App app{"kvmini: a small VMM on Linux KVM, for comparing how interrupts reach a guest", "kvmini"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("kvmini ") + kVersion);
    app.add_option("--log-level", result.log_level, "trace, debug, info, warn, error or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

    CLI::App* run = app.add_subcommand("run", "boot a guest");
    run->add_option("--log-level", result.log_level, "trace, debug, info, warn, error or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
    run->add_option("-k,--kernel", cfg.kernel, "guest kernel: bzImage, vmlinux (ELF) or a Multiboot ELF")->required();
    run->add_option("-i,--initrd", cfg.initrd, "initrd / initramfs (Multiboot: modules, comma-separated)");
    run->add_option("-p,--params", cfg.cmdline,
                    "kernel command line; a Linux guest gets the board's parameters first (\"" +
                        std::string(kBoardLinuxParams) + "\"), which later words override");
    run->add_flag("!--no-default-params", cfg.default_params, "give a Linux guest only -p (and what the CPU profile needs)");
    run->add_option("-m,--mem", cfg.mem_mib, "guest RAM in MiB")
        ->check(CLI::Range(uint64_t{16}, uint64_t{1} << 20))
        ->capture_default_str();
    run->add_option("-c,--cpus", cfg.cpus, "number of vCPUs")->check(CLI::Range(1u, 64u))->capture_default_str();
    const std::map<std::string, IrqChipMode> modes{
        {"kernel", IrqChipMode::kKernel}, {"split", IrqChipMode::kSplit}, {"user", IrqChipMode::kUser}};
    std::string irqchip = "kernel";
    run->add_option("--irqchip", irqchip,
                    "interrupt controllers: kernel (all in KVM), split (LAPICs in KVM; PIC, IOAPIC, PIT in "
                    "kvmini), user (all in kvmini, the LAPICs too)")
        ->transform(CLI::IsMember({"kernel", "split", "user"}, CLI::ignore_case))
        ->capture_default_str();
    const std::map<std::string, PitPolicy> policies{{"reinject", PitPolicy::kReinject},
                                                    {"discard", PitPolicy::kDiscard}};
    std::string pit_policy = "reinject";
    run->add_option("--pit-policy", pit_policy,
                    "lost PIT ticks where kvmini emulates the PIT (split, user): reinject (each one is delivered "
                    "after the previous was acknowledged) or discard (late ticks coalesce)")
        ->transform(CLI::IsMember({"reinject", "discard"}, CLI::ignore_case))
        ->capture_default_str();
    std::string profile = "auto";
    run->add_option("--cpu-profile", profile,
                    "CPUID profile: host (KVM's supported CPUID), safe (hides what a software KVM cannot "
                    "emulate), auto (safe when the host has no VMX/SVM)")
        ->check(CLI::IsMember({"auto", "host", "safe"}))
        ->default_str("auto");
    run->add_option("-d,--disk", cfg.disks, "virtio-blk disk image: PATH[,ro] (repeatable)");
    run->add_flag("--test-devices", cfg.test_devices,
                  "QEMU-compatible test devices: isa-debug-exit (0xf4), pc-testdev IRQ lines (0x2000), fw_cfg");
    std::string stats;
    run->add_flag("--stats{text}", stats,
                  "when the guest stops, print exits, interrupts (kvmini's and KVM's own counters), memory: "
                  "--stats or --stats=text, or --stats=json")
        ->check(CLI::IsMember({"text", "json"}));
    run->add_option("--stats-file", cfg.stats_file, "write the --stats report to this file instead of stderr");
    run->add_option("--kvm-device", cfg.kvm_device, "the KVM device")->default_str("/dev/kvm");

    CLI::App* version = app.add_subcommand("version", "print kvmini's version");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        result.action = CliResult::Action::kExit;
        result.exit_status = app.exit(e, out, err);
        return result;
    }
    cfg.stats = !stats.empty() || !cfg.stats_file.empty();
    cfg.stats_format = stats == "json" ? StatsFormat::kJson : StatsFormat::kText;
    cfg.irqchip = modes.at(irqchip);
    cfg.pit_policy = policies.at(pit_policy);
    if (profile == "host") cfg.cpu_profile = CpuProfile::kHost;
    if (profile == "safe") cfg.cpu_profile = CpuProfile::kSafe;
    result.action = version->parsed() ? CliResult::Action::kVersion : CliResult::Action::kRun;
    return result;
}

}  // namespace kvmini
