#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "vmm/cli.h"
#include "vmm/guest_cmdline.h"

using namespace kvmini;

namespace {
CliResult parse(std::vector<const char*> args, std::string* err_text = nullptr)
{
    args.insert(args.begin(), "kvmini");
    std::ostringstream out, err;
    CliResult r = parse_cli(static_cast<int>(args.size()), args.data(), out, err);
    if (err_text) *err_text = err.str() + out.str();
    return r;
}
}  // namespace

TEST(Cli, RunWithAllOptions)
{
    const auto r = parse({"run", "-k", "vmlinux", "-i", "initrd", "-p", "console=ttyS0", "-m", "128", "-c", "2",
                          "--irqchip", "kernel", "--cpu-profile", "safe", "-d", "a.img", "-d", "b.img,ro",
                          "--test-devices"});
    ASSERT_EQ(r.action, CliResult::Action::kRun);
    EXPECT_EQ(r.config.kernel, "vmlinux");
    EXPECT_EQ(r.config.initrd, "initrd");
    EXPECT_EQ(r.config.cmdline, "console=ttyS0");
    EXPECT_EQ(r.config.mem_mib, 128u);
    EXPECT_EQ(r.config.cpus, 2u);
    EXPECT_EQ(r.config.irqchip, IrqChipMode::kKernel);
    EXPECT_EQ(r.config.cpu_profile, CpuProfile::kSafe);
    EXPECT_EQ(r.config.disks, (std::vector<std::string>{"a.img", "b.img,ro"}));
    EXPECT_TRUE(r.config.test_devices);
}

TEST(Cli, Defaults)
{
    const auto r = parse({"run", "--kernel", "bzImage"});
    ASSERT_EQ(r.action, CliResult::Action::kRun);
    EXPECT_EQ(r.config.mem_mib, 256u);
    EXPECT_EQ(r.config.cpus, 1u);
    EXPECT_EQ(r.config.irqchip, IrqChipMode::kKernel);
    EXPECT_FALSE(r.config.cpu_profile.has_value());
    EXPECT_EQ(r.config.kvm_device, "/dev/kvm");
}

TEST(Cli, SplitAndUserModesParse)
{
    EXPECT_EQ(parse({"run", "-k", "k", "--irqchip", "split"}).config.irqchip, IrqChipMode::kSplit);
    EXPECT_EQ(parse({"run", "-k", "k", "--irqchip", "user"}).config.irqchip, IrqChipMode::kUser);
}

TEST(Cli, PitPolicy)
{
    EXPECT_EQ(parse({"run", "-k", "k"}).config.pit_policy, PitPolicy::kReinject);
    EXPECT_EQ(parse({"run", "-k", "k", "--pit-policy", "discard"}).config.pit_policy, PitPolicy::kDiscard);
    EXPECT_NE(parse({"run", "-k", "k", "--pit-policy", "sometimes"}).exit_status, 0);
}

TEST(Cli, MissingKernelIsAnError)
{
    std::string err;
    const auto r = parse({"run", "-m", "64"}, &err);
    EXPECT_EQ(r.action, CliResult::Action::kExit);
    EXPECT_NE(r.exit_status, 0);
    EXPECT_NE(err.find("kernel"), std::string::npos) << err;
}

TEST(Cli, BadValuesAreErrors)
{
    for (auto args : std::vector<std::vector<const char*>>{
             {"run", "-k", "k", "--irqchip", "bogus"},
             {"run", "-k", "k", "-c", "0"},
             {"run", "-k", "k", "-m", "1"},
             {"run", "-k", "k", "-m", "lots"},
             {"run", "-k", "k", "--cpu-profile", "fast"},
             {"run", "-k", "k", "--no-such-option"},
             {},
         }) {
        std::string err;
        const auto r = parse(args, &err);
        EXPECT_EQ(r.action, CliResult::Action::kExit) << err;
        EXPECT_NE(r.exit_status, 0) << err;
        EXPECT_FALSE(err.empty());
    }
}

TEST(Cli, HelpExitsZero)
{
    std::string text;
    const auto r = parse({"run", "--help"}, &text);
    EXPECT_EQ(r.action, CliResult::Action::kExit);
    EXPECT_EQ(r.exit_status, 0);
    EXPECT_NE(text.find("--irqchip"), std::string::npos);
}

TEST(Cli, Version)
{
    EXPECT_EQ(parse({"version"}).action, CliResult::Action::kVersion);
}

TEST(Cli, DashDashVersionPrintsItAndExitsZero)
{
    std::string text;
    const auto r = parse({"--version"}, &text);
    EXPECT_EQ(r.action, CliResult::Action::kExit);
    EXPECT_EQ(r.exit_status, 0);
    EXPECT_NE(text.find(std::string("kvmini ") + kVersion), std::string::npos) << text;
}

TEST(Cli, HelpNamesTheModesAndShowsDefaults)
{
    std::string text;
    parse({"run", "--help"}, &text);
    EXPECT_NE(text.find("{kernel,split,user}=kernel"), std::string::npos) << text;
    EXPECT_NE(text.find("{reinject,discard}=reinject"), std::string::npos) << text;
    EXPECT_NE(text.find("=256"), std::string::npos) << "RAM default";
    EXPECT_NE(text.find("]=1"), std::string::npos) << "vCPU default";
    EXPECT_EQ(text.find("->0"), std::string::npos) << "no enum numbers: " << text;
}

TEST(Cli, ModeNamesIgnoreCaseAndDefaultParamsCanBeTurnedOff)
{
    const auto r = parse({"run", "-k", "k", "--irqchip", "USER", "--pit-policy", "Discard"});
    EXPECT_EQ(r.config.irqchip, IrqChipMode::kUser);
    EXPECT_EQ(r.config.pit_policy, PitPolicy::kDiscard);
    EXPECT_TRUE(r.config.default_params);
    EXPECT_FALSE(parse({"run", "-k", "k", "--no-default-params"}).config.default_params);
}

TEST(LinuxCmdline, BoardParametersFirstThenTheUsers)
{
    EXPECT_EQ(linux_cmdline("", true, CpuProfile::kHost), kBoardLinuxParams);
    EXPECT_EQ(linux_cmdline("quiet panic=5", true, CpuProfile::kHost), std::string(kBoardLinuxParams) + " quiet panic=5")
        << "the user's panic= comes later, so Linux takes it";
    EXPECT_EQ(linux_cmdline("quiet", false, CpuProfile::kHost), "quiet");
    const std::string safe = linux_cmdline("", true, CpuProfile::kSafe);
    EXPECT_EQ(safe.rfind(kBoardLinuxParams, 0), 0u);
    EXPECT_NE(safe.find("clearcpuid="), std::string::npos) << "the safe profile's part still comes last";
}

TEST(MultibootCmdline, KernelPathThenTheParameters)
{
    EXPECT_EQ(multiboot_cmdline("build/guests/lapic.elf", "mode=user ipi"), "build/guests/lapic.elf mode=user ipi");
    EXPECT_EQ(multiboot_cmdline("/k.elf", ""), "/k.elf");
}
