#include <gtest/gtest.h>

#include <vector>

#include "devices/bus.h"
#include "vmm/error.h"

using namespace kvmini;

namespace {
struct RecordingDevice : BusDevice {
    std::vector<std::pair<uint64_t, uint8_t>> writes;
    uint8_t value = 0;
    void read(uint64_t offset, std::span<uint8_t> data) override
    {
        for (auto& b : data) b = static_cast<uint8_t>(value + offset);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override { writes.emplace_back(offset, data[0]); }
};
}  // namespace

TEST(Bus, DispatchesWithOffsetRelativeToTheRange)
{
    Bus bus("test");
    RecordingDevice dev;
    dev.value = 0x40;
    bus.add(0x3f8, 8, dev, "uart");
    uint8_t b = 0;
    EXPECT_TRUE(bus.read(0x3fa, {&b, 1}));
    EXPECT_EQ(b, 0x42);
    const uint8_t v = 7;
    EXPECT_TRUE(bus.write(0x3ff, {&v, 1}));
    ASSERT_EQ(dev.writes.size(), 1u);
    EXPECT_EQ(dev.writes[0].first, 7u);
}

TEST(Bus, UnclaimedReadsAreAllOnesAndCounted)
{
    Bus bus("test");
    RecordingDevice dev;
    bus.add(0x60, 1, dev, "i8042");
    uint32_t v = 0;
    EXPECT_FALSE(bus.read(0x80, {reinterpret_cast<uint8_t*>(&v), 4}));
    EXPECT_EQ(v, 0xffffffffu);
    const uint8_t w = 1;
    EXPECT_FALSE(bus.write(0x61, {&w, 1}));
    EXPECT_EQ(bus.unclaimed_reads(), 1u);
    EXPECT_EQ(bus.unclaimed_writes(), 1u);
    EXPECT_TRUE(dev.writes.empty());
}

TEST(Bus, AccessStraddlingTheEndOfARangeIsUnclaimed)
{
    Bus bus("test");
    RecordingDevice dev;
    bus.add(0x100, 4, dev, "dev");
    uint32_t v = 0;
    EXPECT_FALSE(bus.read(0x102, {reinterpret_cast<uint8_t*>(&v), 4}));
    EXPECT_TRUE(bus.read(0x100, {reinterpret_cast<uint8_t*>(&v), 4}));
}

TEST(Bus, OverlappingRangesAreRefused)
{
    Bus bus("test");
    RecordingDevice a, b;
    bus.add(0x100, 0x10, a, "a");
    EXPECT_THROW(bus.add(0x10f, 1, b, "b"), Error);    // last byte of a
    EXPECT_THROW(bus.add(0xf8, 0x10, b, "b"), Error);  // runs into a
    EXPECT_THROW(bus.add(0x100, 1, b, "b"), Error);    // same base
    EXPECT_THROW(bus.add(0x0, 0x1000, b, "b"), Error); // covers a
    EXPECT_THROW(bus.add(0x200, 0, b, "b"), Error);    // empty
    EXPECT_THROW(bus.add(~0ull - 1, 4, b, "b"), Error);  // wraps
    EXPECT_NO_THROW(bus.add(0x110, 1, b, "b"));        // adjacent is fine
    EXPECT_NO_THROW(bus.add(0xff, 1, b, "b2"));
}

TEST(Bus, OverlapErrorNamesBothDevices)
{
    Bus bus("port I/O");
    RecordingDevice a, b;
    bus.add(0x3f8, 8, a, "COM1");
    try {
        bus.add(0x3fc, 2, b, "intruder");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("COM1"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("intruder"), std::string::npos) << e.what();
    }
}

TEST(Bus, RemovedRangeIsUnclaimed)
{
    Bus bus("test");
    RecordingDevice a;
    bus.add(0x1000, 0x100, a, "bar");
    EXPECT_TRUE(bus.remove(0x1000));
    EXPECT_FALSE(bus.remove(0x1000));
    uint8_t v;
    EXPECT_FALSE(bus.read(0x1000, {&v, 1}));
    EXPECT_NO_THROW(bus.add(0x1000, 0x100, a, "bar moved back"));
}

TEST(Bus, AfterWriteHookRunsOnceAfterEachHandledWrite)
{
    Bus bus("test");
    RecordingDevice dev;
    std::vector<size_t> writes_seen;  // how many writes the device had when the hook ran
    bus.add(0x40, 4, dev, "pit", [&] { writes_seen.push_back(dev.writes.size()); });
    const uint8_t v = 1;
    uint8_t b = 0;
    bus.write(0x43, {&v, 1});
    bus.read(0x40, {&b, 1});   // reads do not run it
    bus.write(0x44, {&v, 1});  // unclaimed: not this device's
    bus.write(0x40, {&v, 1});
    EXPECT_EQ(writes_seen, (std::vector<size_t>{1, 2}));
}
