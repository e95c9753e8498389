// The split virtqueue against a hostile driver: every malformed ring or chain
// either fails its request or breaks the queue, without touching memory
// outside guest RAM, crashing or hanging.
#include <gtest/gtest.h>

#include "devices/virtio/virtio_spec.h"
#include "devices/virtio/virtqueue.h"
#include "vmm/guest_memory.h"

namespace kvmini {
namespace {

using namespace virtio;

constexpr uint64_t kRam = 1 << 20;
constexpr uint16_t kSize = 8;
constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;
constexpr uint64_t kBuf = 0x10000;

class VirtQueueTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        vq.set_size(kSize);
        vq.set_desc_addr(kDesc);
        vq.set_avail_addr(kAvail);
        vq.set_used_addr(kUsed);
        vq.set_features(feature(kFRingIndirectDesc) | feature(kFRingEventIdx));
        ASSERT_TRUE(vq.enable()) << vq.error();
    }
    void desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0)
    {
        ASSERT_TRUE(mem.write_obj(table + 16ull * i, VirtqDesc{addr, len, flags, next}));
    }
    void publish(uint16_t head)
    {
        mem.write_obj<uint16_t>(kAvail + kAvailRing + 2ull * (avail_idx % kSize), head);
        ++avail_idx;
        mem.write_obj<uint16_t>(kAvail + kAvailIdx, avail_idx);
    }
    VirtqPop pop() { return vq.pop(chain); }

    GuestMemory mem{kRam};
    VirtQueue vq{mem, 16};
    VirtqChain chain;
    uint16_t avail_idx = 0;
};

TEST_F(VirtQueueTest, ChainOfReadableThenWritableBuffers)
{
    EXPECT_EQ(pop(), VirtqPop::kEmpty);
    desc(kDesc, 3, kBuf, 16, kDescFNext, 5);
    desc(kDesc, 5, kBuf + 0x100, 512, kDescFNext | kDescFWrite, 1);
    desc(kDesc, 1, kBuf + 0x400, 1, kDescFWrite);
    publish(3);
    ASSERT_EQ(pop(), VirtqPop::kChain);
    EXPECT_EQ(chain.head, 3);
    EXPECT_TRUE(chain.buffers_ok);
    ASSERT_EQ(chain.readable.size(), 1u);
    ASSERT_EQ(chain.writable.size(), 2u);
    EXPECT_EQ(chain.readable[0].host, mem.host_ptr(kBuf, 16));
    EXPECT_EQ(chain.writable[1].gpa, kBuf + 0x400);
    EXPECT_EQ(chain.readable_bytes, 16u);
    EXPECT_EQ(chain.writable_bytes, 513u);
    EXPECT_EQ(pop(), VirtqPop::kEmpty);

    vq.push(3, 513);
    EXPECT_EQ(mem.read_obj<uint16_t>(kUsed + kUsedIdx), 1);
    EXPECT_EQ(mem.read_obj<uint32_t>(kUsed + kUsedRing), 3u);
    EXPECT_EQ(mem.read_obj<uint32_t>(kUsed + kUsedRing + 4), 513u);
}

TEST_F(VirtQueueTest, ChainAsLongAsTheQueueIsAccepted)
{
    for (uint16_t i = 0; i < kSize; ++i)
        desc(kDesc, i, kBuf + 16 * i, 16, i + 1 < kSize ? kDescFNext : 0, static_cast<uint16_t>(i + 1));
    publish(0);
    ASSERT_EQ(pop(), VirtqPop::kChain);
    EXPECT_EQ(chain.readable.size(), kSize);
}

TEST_F(VirtQueueTest, IndexesWrapAround16Bits)
{
    desc(kDesc, 0, kBuf, 16, 0);
    for (int i = 0; i < 70000; ++i) {
        publish(0);
        ASSERT_EQ(pop(), VirtqPop::kChain) << i;
        vq.push(0, 0);
    }
    EXPECT_EQ(vq.used_idx(), static_cast<uint16_t>(70000));
    EXPECT_EQ(pop(), VirtqPop::kEmpty);
}

TEST(VirtQueueEnable, RejectsBadSizeAlignmentAndPlacement)
{
    GuestMemory mem(kRam);
    VirtQueue vq(mem, 256);
    auto try_enable = [&](uint16_t size, uint64_t d, uint64_t a, uint64_t u) {
        vq.reset();
        vq.set_size(size);
        vq.set_desc_addr(d);
        vq.set_avail_addr(a);
        vq.set_used_addr(u);
        const bool ok = vq.enable();
        EXPECT_EQ(ok, vq.enabled());
        EXPECT_EQ(ok, vq.error().empty());
        return ok;
    };
    EXPECT_TRUE(try_enable(256, kDesc, kAvail, kUsed + 0x1000));
    EXPECT_FALSE(try_enable(100, kDesc, kAvail, kUsed));     // not a power of two
    EXPECT_FALSE(try_enable(0, kDesc, kAvail, kUsed));
    EXPECT_FALSE(try_enable(512, kDesc, kAvail, kUsed));     // above the maximum
    EXPECT_FALSE(try_enable(8, kDesc + 8, kAvail, kUsed));   // desc: 16-byte alignment
    EXPECT_FALSE(try_enable(8, kDesc, kAvail + 1, kUsed));   // avail: 2
    EXPECT_FALSE(try_enable(8, kDesc, kAvail, kUsed + 2));   // used: 4
    EXPECT_FALSE(try_enable(8, kRam + 0x1000, kAvail, kUsed));            // outside RAM
    EXPECT_FALSE(try_enable(8, kDesc, kAvail, kRam - 8));                 // used ring runs off the end
    EXPECT_FALSE(try_enable(8, kDesc, 0xffff'ffff'ffff'fff0, kUsed));     // wraps
    // A disabled queue has nothing to pop and never writes the used ring.
    VirtqChain chain;
    EXPECT_EQ(vq.pop(chain), VirtqPop::kEmpty);
    vq.push(0, 0);
    EXPECT_EQ(mem.read_obj<uint16_t>(kUsed + kUsedIdx), 0);
}

TEST_F(VirtQueueTest, HeadIndexOutOfRangeBreaksTheQueue)
{
    publish(kSize);
    EXPECT_EQ(pop(), VirtqPop::kBroken);
    EXPECT_TRUE(vq.broken());
    EXPECT_NE(vq.error().find("head index"), std::string::npos);
    // Broken stays broken (a later good chain is not served) until reset.
    desc(kDesc, 0, kBuf, 16, 0);
    publish(0);
    EXPECT_EQ(pop(), VirtqPop::kBroken);
    vq.push(0, 0);
    EXPECT_EQ(mem.read_obj<uint16_t>(kUsed + kUsedIdx), 0);
}

TEST_F(VirtQueueTest, NextIndexOutOfRangeBreaksTheQueue)
{
    desc(kDesc, 0, kBuf, 16, kDescFNext, 200);
    publish(0);
    EXPECT_EQ(pop(), VirtqPop::kBroken);
    EXPECT_NE(vq.error().find("out of range"), std::string::npos);
}

TEST_F(VirtQueueTest, LoopingChainBreaksTheQueue)
{
    desc(kDesc, 0, kBuf, 16, kDescFNext, 1);
    desc(kDesc, 1, kBuf, 16, kDescFNext, 2);
    desc(kDesc, 2, kBuf, 16, kDescFNext, 0);
    publish(0);
    EXPECT_EQ(pop(), VirtqPop::kBroken);
    EXPECT_NE(vq.error().find("loops"), std::string::npos);
}

TEST_F(VirtQueueTest, SelfLoopBreaksTheQueue)
{
    desc(kDesc, 4, kBuf, 16, kDescFNext | kDescFWrite, 4);
    publish(4);
    EXPECT_EQ(pop(), VirtqPop::kBroken);
}

TEST_F(VirtQueueTest, AvailableIndexFarAheadBreaksTheQueue)
{
    mem.write_obj<uint16_t>(kAvail + kAvailIdx, kSize + 1);
    EXPECT_EQ(pop(), VirtqPop::kBroken);
}

TEST_F(VirtQueueTest, BufferOutsideRamFailsOnlyItsRequest)
{
    desc(kDesc, 0, kBuf, 16, kDescFNext, 1);
    desc(kDesc, 1, kRam + 0x1000, 512, kDescFNext | kDescFWrite, 2);   // beyond RAM
    desc(kDesc, 2, kBuf + 0x100, 1, kDescFWrite);
    publish(0);
    ASSERT_EQ(pop(), VirtqPop::kChain);
    EXPECT_FALSE(chain.buffers_ok);
    EXPECT_EQ(chain.writable[0].host, nullptr);
    EXPECT_NE(chain.writable[1].host, nullptr);
    EXPECT_FALSE(vq.broken());
    EXPECT_EQ(vq.failed_buffers(), 1u);

    // Straddling the end of RAM, and an address that wraps, are outside too.
    desc(kDesc, 3, kRam - 8, 16, 0);
    publish(3);
    ASSERT_EQ(pop(), VirtqPop::kChain);
    EXPECT_FALSE(chain.buffers_ok);
    desc(kDesc, 4, 0xffff'ffff'ffff'fff0, 0x20, kDescFWrite);
    publish(4);
    ASSERT_EQ(pop(), VirtqPop::kChain);
    EXPECT_FALSE(chain.buffers_ok);

    // The next good request is served.
    desc(kDesc, 5, kBuf, 16, 0);
    publish(5);
    ASSERT_EQ(pop(), VirtqPop::kChain);
    EXPECT_TRUE(chain.buffers_ok);
}

TEST_F(VirtQueueTest, ReadableAfterWritableFailsTheRequest)
{
    desc(kDesc, 0, kBuf, 1, kDescFNext | kDescFWrite, 1);
    desc(kDesc, 1, kBuf, 16, 0);
    publish(0);
    ASSERT_EQ(pop(), VirtqPop::kChain);
    EXPECT_FALSE(chain.buffers_ok);
}

TEST_F(VirtQueueTest, IndirectTable)
{
    const uint64_t table = 0x5000;
    desc(table, 0, kBuf, 16, kDescFNext, 1);
    desc(table, 1, kBuf + 0x200, 512, kDescFNext | kDescFWrite, 2);
    desc(table, 2, kBuf + 0x800, 1, kDescFWrite);
    desc(kDesc, 6, table, 48, kDescFIndirect);
    publish(6);
    ASSERT_EQ(pop(), VirtqPop::kChain);
    EXPECT_EQ(chain.head, 6);
    EXPECT_TRUE(chain.buffers_ok);
    EXPECT_EQ(chain.readable.size(), 1u);
    EXPECT_EQ(chain.writable.size(), 2u);
    EXPECT_EQ(chain.writable_bytes, 513u);
}

// Each malformed indirect descriptor breaks the queue.
struct BadIndirect {
    const char* name;
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    bool nested;
    bool loop;
};

class VirtQueueBadIndirect : public VirtQueueTest, public ::testing::WithParamInterface<BadIndirect> {};

TEST_P(VirtQueueBadIndirect, BreaksTheQueue)
{
    const BadIndirect& p = GetParam();
    const uint64_t table = 0x5000;
    desc(table, 0, kBuf, 16, kDescFNext, 1);
    if (p.nested)
        desc(table, 1, 0x6000, 16, kDescFIndirect);
    else if (p.loop)
        desc(table, 1, kBuf, 16, kDescFNext, 0);
    else
        desc(table, 1, kBuf, 1, kDescFWrite);
    desc(kDesc, 0, p.addr, p.len, p.flags, 1);
    desc(kDesc, 1, kBuf, 1, kDescFWrite);
    publish(0);
    EXPECT_EQ(pop(), VirtqPop::kBroken) << p.name;
    EXPECT_TRUE(vq.broken());
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, VirtQueueBadIndirect,
    ::testing::Values(BadIndirect{"ZeroLength", 0x5000, 0, kDescFIndirect, false, false},
                      BadIndirect{"LengthNotMultipleOf16", 0x5000, 24, kDescFIndirect, false, false},
                      BadIndirect{"LongerThanQueue", 0x5000, 16 * (kSize + 1), kDescFIndirect, false, false},
                      BadIndirect{"OutsideRam", kRam - 16, 32, kDescFIndirect, false, false},
                      BadIndirect{"WithNext", 0x5000, 32, kDescFIndirect | kDescFNext, false, false},
                      BadIndirect{"Nested", 0x5000, 32, kDescFIndirect, true, false},
                      BadIndirect{"LoopInside", 0x5000, 32, kDescFIndirect, false, true}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(VirtQueueTest, IndirectWithoutTheFeatureBreaksTheQueue)
{
    vq.reset();
    vq.set_size(kSize);
    vq.set_desc_addr(kDesc);
    vq.set_avail_addr(kAvail);
    vq.set_used_addr(kUsed);
    vq.set_features(0);
    ASSERT_TRUE(vq.enable());
    desc(0x5000, 0, kBuf, 16, 0);
    desc(kDesc, 0, 0x5000, 16, kDescFIndirect);
    avail_idx = 0;
    publish(0);
    EXPECT_EQ(pop(), VirtqPop::kBroken);
}

TEST_F(VirtQueueTest, EventIdxSuppressesInterruptsUntilUsedEvent)
{
    const uint64_t used_event = kAvail + kAvailRing + 2ull * kSize;
    desc(kDesc, 0, kBuf, 16, 0);
    auto one = [&] {
        publish(0);
        EXPECT_EQ(pop(), VirtqPop::kChain);
        vq.push(0, 0);
        return vq.needs_interrupt();
    };
    EXPECT_TRUE(one());                       // the first one always
    mem.write_obj<uint16_t>(used_event, 3);   // "interrupt me when used idx passes 3"
    EXPECT_FALSE(one());                      // used idx 2
    EXPECT_FALSE(one());                      // 3
    EXPECT_TRUE(one());                       // 4: crossed
    EXPECT_FALSE(vq.needs_interrupt());       // nothing new pushed

    // avail_event tells the driver where to notify from.
    EXPECT_FALSE(vq.prepare_wait());
    EXPECT_EQ(mem.read_obj<uint16_t>(kUsed + kUsedRing + kUsedElemSize * kSize), 4);
    publish(0);
    EXPECT_TRUE(vq.prepare_wait());           // arrived meanwhile: process again
}

TEST_F(VirtQueueTest, NoInterruptFlagWithoutEventIdx)
{
    vq.set_features(0);
    desc(kDesc, 0, kBuf, 16, 0);
    mem.write_obj<uint16_t>(kAvail + kAvailFlags, kAvailFNoInterrupt);
    publish(0);
    ASSERT_EQ(pop(), VirtqPop::kChain);
    vq.push(0, 0);
    EXPECT_FALSE(vq.needs_interrupt());
    mem.write_obj<uint16_t>(kAvail + kAvailFlags, 0);
    publish(0);
    ASSERT_EQ(pop(), VirtqPop::kChain);
    vq.push(0, 0);
    EXPECT_TRUE(vq.needs_interrupt());
}

TEST_F(VirtQueueTest, ResetClearsEverything)
{
    publish(kSize + 3);
    EXPECT_EQ(pop(), VirtqPop::kBroken);
    vq.reset();
    EXPECT_FALSE(vq.broken());
    EXPECT_FALSE(vq.enabled());
    EXPECT_EQ(vq.size(), 16);
    EXPECT_EQ(vq.desc_addr(), 0u);
    EXPECT_EQ(vq.last_avail_idx(), 0);
}

}  // namespace
}  // namespace kvmini
