// The keyboard controller as seen through the port I/O bus at 0x60/0x64.
#include "devices/i8042.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "devices/bus.h"
#include "tests/unit/fakes.h"
#include "vmm/error.h"

namespace kvmini {
namespace {

class I8042Test : public ::testing::Test {
protected:
    I8042Test() { kbc_.attach(bus_); }

    uint8_t in(uint64_t port)
    {
        uint8_t v = 0;
        EXPECT_TRUE(bus_.read(port, std::span<uint8_t>(&v, 1)));
        return v;
    }
    void out(uint64_t port, uint8_t v) { EXPECT_TRUE(bus_.write(port, std::span<const uint8_t>(&v, 1))); }

    int resets_ = 0;
    I8042 kbc_{[this] { ++resets_; }};
    Bus bus_{"pio"};
};

TEST_F(I8042Test, ClaimsOnly0x60And0x64)
{
    uint8_t v = 0;
    for (uint64_t port : {0x61, 0x62, 0x63, 0x65}) {
        EXPECT_FALSE(bus_.read(port, std::span<uint8_t>(&v, 1))) << port;
    }
    EXPECT_THROW(I8042([] {}).attach(bus_), Error);  // ports already taken
}

TEST_F(I8042Test, StatusAtStartHasNothingPendingAndInputBufferEmpty)
{
    EXPECT_EQ(in(0x64), 0x14);  // SYS | keyboard not inhibited; OBF = IBF = 0
    EXPECT_EQ(kbc_.command_byte(), 0x45);
}

TEST_F(I8042Test, PulseResetLineCallsResetCallback)
{
    // Linux arch/x86/kernel/reboot.c BOOT_KBD: wait for IBF clear, write 0xFE to 0x64.
    EXPECT_EQ(in(0x64) & i8042::kStatusIbf, 0);
    out(0x64, 0xfe);
    EXPECT_EQ(resets_, 1);
    out(0x64, 0xfe);
    EXPECT_EQ(resets_, 2);
    EXPECT_EQ(kbc_.stats().resets, 2u);
    EXPECT_EQ(in(0x64) & (i8042::kStatusIbf | i8042::kStatusObf), 0);
}

TEST_F(I8042Test, OtherPulseCommandsResetOnlyWhenBit0IsClear)
{
    out(0x64, 0xff);  // pulse nothing
    out(0x64, 0xf1);  // pulse lines 1..3, not reset
    EXPECT_EQ(resets_, 0);
    out(0x64, 0xf0);  // pulse all four, including reset
    EXPECT_EQ(resets_, 1);
}

TEST_F(I8042Test, WriteOutputPortWithResetBitLowResets)
{
    out(0x64, 0xd0);
    EXPECT_EQ(in(0x64) & i8042::kStatusObf, i8042::kStatusObf);
    EXPECT_EQ(in(0x60), 0x03);
    out(0x64, 0xd1);
    out(0x60, 0x03);  // keeps reset high
    EXPECT_EQ(resets_, 0);
    out(0x64, 0xd1);
    out(0x60, 0x02);
    EXPECT_EQ(resets_, 1);
}

TEST_F(I8042Test, SelfTestAnswers0x55)
{
    out(0x64, 0xaa);
    EXPECT_EQ(in(0x64), 0x1d);  // OBF | SYS | command | unlocked
    EXPECT_EQ(in(0x60), 0x55);
    EXPECT_EQ(in(0x64), 0x1c);  // OBF cleared by the read
    out(0x64, 0xab);
    EXPECT_EQ(in(0x60), 0x00);  // keyboard interface OK
    EXPECT_EQ(resets_, 0);
}

TEST_F(I8042Test, ReadAndWriteCommandByte)
{
    out(0x64, 0x20);
    EXPECT_EQ(in(0x60), 0x45);
    out(0x64, 0x60);
    out(0x60, 0x61);  // translate | aux disabled | kbd int, SYS clear
    EXPECT_EQ(kbc_.command_byte(), 0x61);
    EXPECT_EQ(in(0x64), 0x10);  // SYS follows the command byte; last write was data
    out(0x64, 0x20);
    EXPECT_EQ(in(0x60), 0x61);
    EXPECT_EQ(kbc_.stats().keyboard_writes, 0u);
}

TEST_F(I8042Test, DisableAndEnableKeyboardAndAux)
{
    out(0x64, 0xad);
    EXPECT_EQ(kbc_.command_byte(), 0x55);
    out(0x64, 0xae);
    EXPECT_EQ(kbc_.command_byte(), 0x45);
    out(0x64, 0xa7);
    EXPECT_EQ(kbc_.command_byte(), 0x65);
    out(0x64, 0xa8);
    EXPECT_EQ(kbc_.command_byte(), 0x45);
}

TEST_F(I8042Test, UnknownCommandsAndKeyboardBytesAreCountedAndIgnored)
{
    out(0x64, 0xc0);
    out(0x64, 0x12);
    out(0x60, 0xff);  // keyboard reset: no keyboard
    EXPECT_EQ(kbc_.stats().unknown_commands, 2u);
    EXPECT_EQ(kbc_.stats().keyboard_writes, 1u);
    EXPECT_EQ(in(0x64) & i8042::kStatusObf, 0);
    EXPECT_EQ(resets_, 0);
}

TEST_F(I8042Test, NewCommandCancelsAPendingDataByte)
{
    out(0x64, 0xd1);
    out(0x64, 0xae);
    out(0x60, 0x00);  // now a keyboard byte, not the output port
    EXPECT_EQ(resets_, 0);
    EXPECT_EQ(kbc_.stats().keyboard_writes, 1u);
}

TEST(I8042IrqTest, OutputBufferRaisesIrq1WhenEnabled)
{
    test::RecordingIrqSink irqs;
    I8042 kbc([] {}, irqs.line(1));
    Bus bus("pio");
    kbc.attach(bus);
    uint8_t v = 0xaa;
    bus.write(0x64, std::span<const uint8_t>(&v, 1));
    EXPECT_TRUE(irqs.level(1));
    bus.read(0x60, std::span<uint8_t>(&v, 1));
    EXPECT_EQ(v, 0x55);
    EXPECT_FALSE(irqs.level(1));
    v = 0x60;
    bus.write(0x64, std::span<const uint8_t>(&v, 1));
    v = 0x44;  // keyboard interrupt off
    bus.write(0x60, std::span<const uint8_t>(&v, 1));
    v = 0x20;
    bus.write(0x64, std::span<const uint8_t>(&v, 1));
    EXPECT_FALSE(irqs.level(1));
    const std::vector<std::pair<uint32_t, bool>> expect = {{1, true}, {1, false}};
    EXPECT_EQ(irqs.events(), expect);
}

}  // namespace
}  // namespace kvmini
