// The KVM binary statistics file as the KVM API text (4.133
// KVM_GET_STATS_FD) lays it out, written byte by byte: header, id string,
// descriptors (16 bytes + name_size each), data.
#include <gtest/gtest.h>

#include <linux/kvm.h>

#include <cstring>
#include <vector>

#include "vmm/error.h"
#include "vmm/kvm_stats.h"

namespace kvmini {
namespace {

void put32(std::vector<uint8_t>& b, size_t off, uint32_t v) { std::memcpy(b.data() + off, &v, 4); }
void put16(std::vector<uint8_t>& b, size_t off, uint16_t v) { std::memcpy(b.data() + off, &v, 2); }

// Header (24 bytes), id (8 bytes), then three descriptors with name_size 16.
std::vector<uint8_t> stats_file()
{
    constexpr uint32_t name_size = 16, desc_offset = 32, stride = 16 + name_size;
    std::vector<uint8_t> b(desc_offset + 3 * stride, 0);
    put32(b, 4, name_size);
    put32(b, 8, 3);              // num_desc
    put32(b, 12, 24);            // id_offset
    put32(b, 16, desc_offset);
    put32(b, 20, 4096);          // data_offset
    std::memcpy(b.data() + 24, "kvm-1234", 8);
    struct D {
        uint32_t flags;
        uint16_t size;
        uint32_t offset;
        const char* name;
    } ds[] = {
        {KVM_STATS_TYPE_CUMULATIVE, 1, 0, "exits"},
        {KVM_STATS_TYPE_LOG_HIST | KVM_STATS_UNIT_SECONDS, 32, 8, "halt_wait_hist"},
        {KVM_STATS_TYPE_PEAK, 1, 264, "max_mmu_page_hash_collisions"},  // 28 chars: cut at name_size
    };
    for (uint32_t i = 0; i < 3; ++i) {
        const size_t d = desc_offset + i * stride;
        put32(b, d, ds[i].flags);
        put16(b, d + 6, ds[i].size);
        put32(b, d + 8, ds[i].offset);
        std::memcpy(b.data() + d + 16, ds[i].name, std::min<size_t>(std::strlen(ds[i].name), name_size));
    }
    return b;
}

TEST(KvmStats, SingleValueDescriptorsWithTheirOffsets)
{
    uint32_t data_offset = 0;
    const auto descs = parse_kvm_stats_descriptors(stats_file(), data_offset);
    EXPECT_EQ(data_offset, 4096u);
    ASSERT_EQ(descs.size(), 2u) << "the histogram (size 32) is skipped";
    EXPECT_EQ(descs[0].name, "exits");
    EXPECT_EQ(descs[0].offset, 0u);
    EXPECT_TRUE(KvmStats::is_cumulative(descs[0]));
    EXPECT_EQ(descs[1].name, "max_mmu_page_has") << "a name fills name_size with no NUL";
    EXPECT_EQ(descs[1].offset, 264u);
    EXPECT_FALSE(KvmStats::is_cumulative(descs[1]));
}

TEST(KvmStats, DescriptorsOutsideTheFileAreAnError)
{
    auto b = stats_file();
    put32(b, 8, 4);  // one more descriptor than the bytes hold
    uint32_t data_offset = 0;
    EXPECT_THROW(parse_kvm_stats_descriptors(b, data_offset), Error);
    EXPECT_THROW(parse_kvm_stats_descriptors(std::span<const uint8_t>(b.data(), 10), data_offset), Error);
}

}  // namespace
}  // namespace kvmini
