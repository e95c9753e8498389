// InitDeathWatch: the console lines of a Linux init dying on a software KVM.
#include "vmm/console_watch.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace kvmini {
namespace {

std::span<const uint8_t> bytes(std::string_view s)
{
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

struct Watch {
    int calls = 0;
    InitDeathWatch watch{[this] { ++calls; }};
    void feed(std::string_view s) { watch.feed(bytes(s)); }
};

// What the reference guest printed on kvm_pvm (HOST-KVM.md), CRLF as a UART sends it.
constexpr std::string_view kRun = "[    9.001] Run /init as init process\r\n";
constexpr std::string_view kSegfault =
    "[    9.020] init[1]: segfault at ffffffff81400040 ip 0000000000401000 sp 00007ffd error 15\r\n";
constexpr std::string_view kPanic = "[    9.030] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\r\n";

TEST(InitDeathWatchTest, FiresOnceWhenInitIsKilledAfterRunInit)
{
    Watch w;
    w.feed(kRun);
    w.feed(kSegfault);
    EXPECT_EQ(w.calls, 0);
    w.feed(kPanic);
    EXPECT_EQ(w.calls, 1);
    EXPECT_TRUE(w.watch.fired());
    w.feed(kRun);
    w.feed(kPanic);
    EXPECT_EQ(w.calls, 1);
}

TEST(InitDeathWatchTest, RootFromDiskRunsSbinInit)
{
    Watch w;
    w.feed("Run /sbin/init as init process\n");
    w.feed("Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n");
    EXPECT_EQ(w.calls, 1);
}

TEST(InitDeathWatchTest, BytesMaySplitAnywhere)
{
    Watch w;
    std::string all = std::string(kRun) + std::string(kSegfault) + std::string(kPanic);
    for (char c : all) w.feed(std::string_view(&c, 1));
    EXPECT_EQ(w.calls, 1);
}

TEST(InitDeathWatchTest, PanicWithoutRunInitIsNotThisCase)
{
    Watch w;
    w.feed("Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009\n");
    EXPECT_EQ(w.calls, 0);
}

TEST(InitDeathWatchTest, InitThatRunsOnIsNotFlagged)
{
    Watch w;
    w.feed(kRun);
    w.feed("KVMINI-INIT-OK\r\n");
    for (size_t i = 0; i <= InitDeathWatch::kLinesAfterRun; ++i) w.feed("           CPU0       \r\n");
    // Much later, far from the Run line: not "right after".
    w.feed(kPanic);
    EXPECT_EQ(w.calls, 0);
}

TEST(InitDeathWatchTest, MarkerInALongLineStillCounts)
{
    Watch w;
    w.feed(kRun);
    w.feed(std::string(InitDeathWatch::kMaxLine * 2, 'x') + "\n");
    w.feed(kPanic);
    EXPECT_EQ(w.calls, 1);
}

TEST(InitDeathWatchTest, MessageNamesTheCauseAndTheCommand)
{
    const std::string m = InitDeathWatch::message();
    EXPECT_NE(m.find("cannot run guest userspace"), std::string::npos);
    EXPECT_NE(m.find("./scripts/run-reference.sh --nested"), std::string::npos);
    EXPECT_EQ(m.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace kvmini
