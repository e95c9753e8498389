#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "vmm/cli.h"

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
