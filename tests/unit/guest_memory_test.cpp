#include <gtest/gtest.h>

#include "vmm/error.h"
#include "vmm/guest_memory.h"
#include "vmm/memory_layout.h"

using namespace kvmini;

TEST(GuestMemory, SmallRamIsOneRegionBelowTheHole)
{
    GuestMemory mem(64 << 20);
    ASSERT_EQ(mem.regions().size(), 1u);
    EXPECT_EQ(mem.regions()[0].guest_addr, 0u);
    EXPECT_EQ(mem.regions()[0].size, 64u << 20);
}

TEST(GuestMemory, RamAboveTheHoleContinuesAt4GiB)
{
    const uint64_t size = layout::kMmioHoleStart + (256ull << 20);
    GuestMemory mem(size);
    ASSERT_EQ(mem.regions().size(), 2u);
    EXPECT_EQ(mem.regions()[0].size, layout::kMmioHoleStart);
    EXPECT_EQ(mem.regions()[1].guest_addr, 0x1'0000'0000u);
    EXPECT_EQ(mem.regions()[1].size, 256u << 20);
    // The hole itself is not RAM.
    EXPECT_EQ(mem.host_ptr(layout::kIoapicBase, 4), nullptr);
    EXPECT_NE(mem.host_ptr(0x1'0000'0000, 4), nullptr);
    EXPECT_EQ(mem.host_ptr(layout::kMmioHoleStart - 2, 4), nullptr) << "an access may not straddle the hole";
}

TEST(GuestMemory, OutOfRangeAccessesAreRefused)
{
    GuestMemory mem(16 << 20);
    uint8_t buf[16] = {};
    EXPECT_TRUE(mem.write(0, buf, sizeof buf));
    EXPECT_TRUE(mem.read((16 << 20) - 16, buf, 16));
    EXPECT_FALSE(mem.read((16 << 20) - 15, buf, 16));
    EXPECT_FALSE(mem.write(16 << 20, buf, 1));
    EXPECT_EQ(mem.host_ptr(~0ull - 3, 8), nullptr) << "address arithmetic must not wrap";
    EXPECT_EQ(mem.host_ptr(8, ~0ull), nullptr);
    EXPECT_FALSE(mem.read_obj<uint64_t>((16 << 20) - 4).has_value());
    EXPECT_FALSE(mem.span(16 << 20, 0).data());
}

TEST(GuestMemory, ObjectsRoundTrip)
{
    GuestMemory mem(16 << 20);
    ASSERT_TRUE(mem.write_obj<uint32_t>(0x1000, 0xdeadbeef));
    EXPECT_EQ(mem.read_obj<uint32_t>(0x1000).value(), 0xdeadbeefu);
    EXPECT_EQ(mem.host_ptr(0x1000, 1)[0], 0xef);
}

TEST(GuestMemory, BadSizesAreErrors)
{
    EXPECT_THROW(GuestMemory(0), Error);
    EXPECT_THROW(GuestMemory(4097), Error);
}

TEST(GuestMemory, E820ReservesTheEbdaAndBiosArea)
{
    GuestMemory mem(128 << 20);
    const auto map = mem.e820();
    ASSERT_EQ(map.size(), 3u);
    EXPECT_EQ(map[0].addr, 0u);
    EXPECT_EQ(map[0].size, 0x9fc00u);
    EXPECT_EQ(map[0].type, E820Entry::kRam);
    EXPECT_EQ(map[1].addr, 0x9fc00u);
    EXPECT_EQ(map[1].size, 0x100000u - 0x9fc00u);
    EXPECT_EQ(map[1].type, E820Entry::kReserved);
    EXPECT_EQ(map[2].addr, 0x100000u);
    EXPECT_EQ(map[2].size, (128u << 20) - 0x100000u);
    EXPECT_EQ(map[2].type, E820Entry::kRam);
}

TEST(GuestMemory, E820ListsRamAbove4GiB)
{
    GuestMemory mem(layout::kMmioHoleStart + (64ull << 20));
    const auto map = mem.e820();
    ASSERT_EQ(map.size(), 4u);
    EXPECT_EQ(map[2].addr + map[2].size, layout::kMmioHoleStart);
    EXPECT_EQ(map[3].addr, 0x1'0000'0000u);
    EXPECT_EQ(map[3].size, 64u << 20);
}
