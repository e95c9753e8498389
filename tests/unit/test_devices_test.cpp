// The QEMU-compatible test devices (devices/test/) seen through the port I/O
// bus, with a recording interrupt sink (tests/unit/fakes.h).
#include "devices/test/test_devices.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "devices/bus.h"
#include "devices/le.h"
#include "devices/test/debug_exit.h"
#include "devices/test/fw_cfg.h"
#include "devices/test/pc_testdev.h"
#include "tests/unit/fakes.h"
#include "vmm/error.h"

namespace kvmini {
namespace {

class TestDevicesTest : public ::testing::Test {
protected:
    TestDevicesTest()
    {
        TestDeviceConfig config;
        config.ram_bytes = 32ull << 20;
        config.cpus = 3;
        config.exit = [this](int status) { exits_.push_back(status); };
        devices_ = std::make_unique<TestDevices>(bus_, irqs_, config);
    }

    void out8(uint64_t port, uint8_t v) { EXPECT_TRUE(bus_.write(port, std::span<const uint8_t>(&v, 1))); }
    void out16(uint64_t port, uint16_t v)
    {
        uint8_t b[2];
        le::store16(b, v);
        EXPECT_TRUE(bus_.write(port, std::span<const uint8_t>(b, 2)));
    }
    void out32(uint64_t port, uint32_t v)
    {
        uint8_t b[4];
        le::store32(b, v);
        EXPECT_TRUE(bus_.write(port, std::span<const uint8_t>(b, 4)));
    }
    uint8_t in8(uint64_t port)
    {
        uint8_t v = 0;
        EXPECT_TRUE(bus_.read(port, std::span<uint8_t>(&v, 1)));
        return v;
    }
    std::vector<uint8_t> read_item(uint16_t key, size_t n)
    {
        out16(fw_cfg::kSelectorPort, key);
        std::vector<uint8_t> bytes;
        for (size_t i = 0; i < n; ++i) bytes.push_back(in8(fw_cfg::kDataPort));
        return bytes;
    }
    uint64_t read_le(uint16_t key, size_t n)
    {
        return le::load(read_item(key, n));
    }

    test::RecordingIrqSink irqs_;
    Bus bus_{"pio"};
    std::vector<int> exits_;
    std::unique_ptr<TestDevices> devices_;
};

// ---- isa-debug-exit

TEST(DebugExitStatus, IsValueShiftedLeftWithBitZeroSet)
{
    EXPECT_EQ(debug_exit::exit_status(0), 1);     // pass
    EXPECT_EQ(debug_exit::exit_status(1), 3);     // fail
    EXPECT_EQ(debug_exit::exit_status(2), 5);
    EXPECT_EQ(debug_exit::exit_status(0x7f), 0xff);
    EXPECT_EQ(debug_exit::exit_status(0x80), 1);  // only 8 bits reach the parent process
}

TEST_F(TestDevicesTest, DebugExitWriteCallsExitWithStatus)
{
    out8(0xf4, 0);
    out8(0xf4, 1);
    out16(0xf4, 0x21);
    out32(0xf4, 0x10);
    ASSERT_EQ(exits_.size(), 4u);
    EXPECT_EQ(exits_[0], 1);
    EXPECT_EQ(exits_[1], 3);
    EXPECT_EQ(exits_[2], 0x43);
    EXPECT_EQ(exits_[3], 0x21);
    EXPECT_EQ(devices_->debug_exit().writes(), 4u);
}

TEST_F(TestDevicesTest, DebugExitReadsAllOnesAndDoesNotExit)
{
    EXPECT_EQ(in8(0xf4), 0xff);
    EXPECT_TRUE(exits_.empty());
}

TEST(DebugExit, WithoutCallbackAWriteIsHarmless)
{
    DebugExit dev{{}};
    const uint8_t v = 1;
    dev.write(0, std::span<const uint8_t>(&v, 1));
    EXPECT_EQ(dev.writes(), 1u);
}

// ---- pc-testdev interrupt lines

TEST_F(TestDevicesTest, TestdevByteSetsTheLevelOfLineN)
{
    out8(0x2000 + 5, 1);
    out8(0x2000 + 5, 0);
    out8(0x2000 + 10, 0x80);  // any non-zero byte is "high"
    out8(0x2000 + 23, 1);
    ASSERT_EQ(irqs_.events().size(), 4u);
    EXPECT_EQ(irqs_.events()[0], std::make_pair(5u, true));
    EXPECT_EQ(irqs_.events()[1], std::make_pair(5u, false));
    EXPECT_EQ(irqs_.events()[2], std::make_pair(10u, true));
    EXPECT_EQ(irqs_.events()[3], std::make_pair(23u, true));
    EXPECT_TRUE(irqs_.level(10));
    EXPECT_EQ(in8(0x2000 + 10), 1);
    EXPECT_EQ(in8(0x2000 + 5), 0);
}

TEST_F(TestDevicesTest, TestdevLineZeroIsGsiZero)
{
    out8(0x2000, 1);
    ASSERT_EQ(irqs_.events().size(), 1u);
    EXPECT_EQ(irqs_.events()[0], std::make_pair(0u, true));
}

TEST_F(TestDevicesTest, TestdevRepeatedLevelReachesTheChipOnce)
{
    out8(0x2000 + 3, 1);
    out8(0x2000 + 3, 1);
    EXPECT_EQ(irqs_.events().size(), 1u);
}

TEST_F(TestDevicesTest, TestdevLinesAbove23AreIgnoredAndCounted)
{
    out8(0x2000 + 24, 1);
    out8(0x2000 + 0xff, 1);
    EXPECT_TRUE(irqs_.events().empty());
    EXPECT_EQ(devices_->irq_lines().ignored_writes(), 2u);
    EXPECT_EQ(in8(0x2000 + 24), 0);
}

TEST_F(TestDevicesTest, TestdevWideWriteSetsConsecutiveLines)
{
    out16(0x2000 + 6, 0x0101);
    ASSERT_EQ(irqs_.events().size(), 2u);
    EXPECT_EQ(irqs_.events()[0], std::make_pair(6u, true));
    EXPECT_EQ(irqs_.events()[1], std::make_pair(7u, true));
}

TEST_F(TestDevicesTest, TestdevSharesLinesWithOtherDevices)
{
    IrqLine uart = irqs_.line(4);  // another source on GSI 4
    uart.set_level(true);
    out8(0x2000 + 4, 1);
    out8(0x2000 + 4, 0);
    EXPECT_TRUE(irqs_.level(4)) << "GSI 4 must stay high while the other source holds it";
}

TEST_F(TestDevicesTest, TestdevWindowEndsAt0x20ff)
{
    uint8_t v = 1;
    EXPECT_FALSE(bus_.write(0x2100, std::span<const uint8_t>(&v, 1)));
}

// ---- fw_cfg

TEST_F(TestDevicesTest, FwCfgSignatureIsQEMU)
{
    const auto sig = read_item(fw_cfg::kSignature, 4);
    EXPECT_EQ(std::string(sig.begin(), sig.end()), "QEMU");
}

TEST_F(TestDevicesTest, FwCfgIdSaysTraditionalInterfaceOnly)
{
    EXPECT_EQ(read_le(fw_cfg::kId, 4), 1u);
}

TEST_F(TestDevicesTest, FwCfgRamSizeAndCpuCounts)
{
    EXPECT_EQ(read_le(fw_cfg::kRamSize, 8), 32ull << 20);
    EXPECT_EQ(read_le(fw_cfg::kNbCpus, 2), 3u);
    EXPECT_EQ(read_le(fw_cfg::kMaxCpus, 2), 3u);
}

TEST_F(TestDevicesTest, FwCfgReadsPastTheEndAreZero)
{
    const auto bytes = read_item(fw_cfg::kNbCpus, 4);
    EXPECT_EQ(bytes, (std::vector<uint8_t>{3, 0, 0, 0}));
}

TEST_F(TestDevicesTest, FwCfgUnknownKeysReadZero)
{
    EXPECT_EQ(read_item(0x0002, 16), std::vector<uint8_t>(16, 0));  // UUID: not provided
    EXPECT_EQ(read_item(0x0019, 4), std::vector<uint8_t>(4, 0));     // file directory: no files
    EXPECT_EQ(read_item(0x8003, 4), std::vector<uint8_t>(4, 0));     // x86 e820: not provided
    EXPECT_EQ(devices_->fw_cfg().unknown_selects(), 3u);
}

TEST_F(TestDevicesTest, FwCfgSelectingAgainRestartsAtOffsetZero)
{
    read_item(fw_cfg::kSignature, 2);
    const auto sig = read_item(fw_cfg::kSignature, 4);
    EXPECT_EQ(std::string(sig.begin(), sig.end()), "QEMU");
}

TEST_F(TestDevicesTest, FwCfgWriteChannelBitSelectsTheSameItem)
{
    const auto sig = read_item(fw_cfg::kSignature | fw_cfg::kWriteChannel, 4);
    EXPECT_EQ(std::string(sig.begin(), sig.end()), "QEMU");
}

TEST_F(TestDevicesTest, FwCfgDataWritesAreIgnored)
{
    out16(fw_cfg::kSelectorPort, fw_cfg::kNbCpus);
    out8(fw_cfg::kDataPort, 9);
    EXPECT_EQ(devices_->fw_cfg().ignored_writes(), 1u);
    EXPECT_EQ(read_le(fw_cfg::kNbCpus, 2), 3u);
}

TEST_F(TestDevicesTest, FwCfgWideReadReturnsConsecutiveBytes)
{
    out16(fw_cfg::kSelectorPort, fw_cfg::kSignature);
    uint8_t b[4] = {};
    ASSERT_TRUE(bus_.read(fw_cfg::kDataPort - 1, std::span<uint8_t>(b, 2)));
    ASSERT_TRUE(bus_.read(fw_cfg::kDataPort, std::span<uint8_t>(b + 2, 1)));
    EXPECT_EQ(std::string(b, b + 3), "QEM");
}

TEST_F(TestDevicesTest, FwCfgSelectorIsLittleEndian)
{
    out16(fw_cfg::kSelectorPort, 0x0005);
    EXPECT_EQ(devices_->fw_cfg().selector(), 5u);
}

// ---- registration

TEST_F(TestDevicesTest, PortsAreClaimedAndReleasedWithTheObject)
{
    TestDeviceConfig config;
    EXPECT_THROW(TestDevices(bus_, irqs_, config), Error);  // already claimed
    devices_.reset();
    uint8_t v = 0;
    EXPECT_FALSE(bus_.read(0xf4, std::span<uint8_t>(&v, 1)));
    EXPECT_FALSE(bus_.read(0x2000, std::span<uint8_t>(&v, 1)));
    EXPECT_FALSE(bus_.read(0x510, std::span<uint8_t>(&v, 1)));
    TestDevices again(bus_, irqs_, config);  // the ports are free again
}

TEST_F(TestDevicesTest, NeighbouringPortsAreNotClaimed)
{
    uint8_t v = 0;
    EXPECT_FALSE(bus_.read(0xf3, std::span<uint8_t>(&v, 1)));
    EXPECT_FALSE(bus_.read(0xf8, std::span<uint8_t>(&v, 1)));
    EXPECT_FALSE(bus_.read(0x1fff, std::span<uint8_t>(&v, 1)));
    EXPECT_FALSE(bus_.read(0x50f, std::span<uint8_t>(&v, 1)));
    EXPECT_FALSE(bus_.read(0x512, std::span<uint8_t>(&v, 1)));
}

}  // namespace
}  // namespace kvmini
