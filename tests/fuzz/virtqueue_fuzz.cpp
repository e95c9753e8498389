// libFuzzer target: the fuzz input is a queue's state plus the guest memory
// behind it; the split virtqueue walks whatever the driver "wrote" and the
// virtio-blk request parser serves every chain it yields, against a scratch
// disk image. Checks that no buffer handed to the device lies outside guest
// RAM and that the used ring accounts for every chain (ASan/UBSan do the
// rest).
//
// Input: a 16-byte Header, then the guest memory image (kRam bytes, zero
// padded). Seeds with well-formed requests of every type are written to
// $KVMINI_FUZZ_SEED_DIR at start-up, if set.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <spdlog/spdlog.h>

#include "devices/le.h"
#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio_spec.h"
#include "devices/virtio/virtqueue.h"
#include "vmm/guest_memory.h"

using namespace kvmini;
using namespace kvmini::virtio;

namespace {

constexpr uint64_t kRam = 64 * 1024;
constexpr uint16_t kMaxQueue = 256;

struct Header {
    uint8_t size_log2;    // queue size 1 << (size_log2 % 10), unless kRawSize
    uint8_t flags;
    uint16_t raw_size;
    uint16_t desc;        // byte offsets in guest memory
    uint16_t avail;
    uint16_t used;
    uint16_t start_idx;   // the driver's idea of where the rings start (avail idx offset)
    uint8_t reserved[4];
};
static_assert(sizeof(Header) == 16);
constexpr uint8_t kIndirect = 1, kEventIdx = 2, kRawSize = 4;

std::unique_ptr<VirtioBlk> g_blk;
std::unique_ptr<GuestMemory> g_mem;

bool inside_ram(const GuestMemory& mem, const uint8_t* p, uint64_t len)
{
    for (const MemoryRegion& r : mem.regions())
        if (p >= r.host && len <= r.size && p - r.host <= static_cast<ptrdiff_t>(r.size - len)) return true;
    return false;
}

// --- Seeds ---------------------------------------------------------------------

struct SeedBuilder {
    std::vector<uint8_t> bytes = std::vector<uint8_t>(sizeof(Header) + kRam, 0);
    Header& h() { return *reinterpret_cast<Header*>(bytes.data()); }
    uint8_t* mem() { return bytes.data() + sizeof(Header); }
    uint16_t size = 8;
    uint16_t next_desc = 0;
    uint16_t avail_idx = 0;
    uint64_t data = 0x4000;

    SeedBuilder(uint8_t flags)
    {
        h().size_log2 = 3;
        h().flags = flags;
        h().desc = 0x1000;
        h().avail = 0x2000;
        h().used = 0x3000;
    }
    uint64_t put(const void* src, size_t len)
    {
        const uint64_t at = data;
        std::memcpy(mem() + at, src, len);
        data += (len + 15) & ~size_t{15};
        return at;
    }
    uint64_t room(size_t len) { return put(std::vector<uint8_t>(len, 0).data(), len); }
    void desc_at(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
    {
        const VirtqDesc d{addr, len, flags, next};
        std::memcpy(mem() + table + 16 * i, &d, sizeof(d));
    }
    // One request: header, data buffers, status.
    struct Buf {
        uint32_t len;
        bool device_writes;
        std::vector<uint8_t> content = {};
    };
    void request(uint32_t type, uint64_t sector, const std::vector<Buf>& bufs, bool indirect)
    {
        const uint32_t hdr[4] = {type, 0, static_cast<uint32_t>(sector), 0};
        std::vector<std::tuple<uint64_t, uint32_t, uint16_t>> chain;
        chain.emplace_back(put(hdr, 16), 16, 0);
        for (const Buf& b : bufs) {
            const uint64_t at = room(b.len);
            if (!b.content.empty()) std::memcpy(mem() + at, b.content.data(), std::min<size_t>(b.content.size(), b.len));
            chain.emplace_back(at, b.len, b.device_writes ? kDescFWrite : 0);
        }
        chain.emplace_back(room(1), 1, kDescFWrite);
        uint16_t head;
        if (indirect) {
            const uint64_t table = room(16 * chain.size());
            for (size_t i = 0; i < chain.size(); ++i) {
                const bool last = i + 1 == chain.size();
                desc_at(table, static_cast<uint16_t>(i), std::get<0>(chain[i]), std::get<1>(chain[i]),
                        std::get<2>(chain[i]) | (last ? 0 : kDescFNext), static_cast<uint16_t>(last ? 0 : i + 1));
            }
            head = next_desc++;
            desc_at(h().desc, head, table, static_cast<uint32_t>(16 * chain.size()), kDescFIndirect, 0);
        } else {
            head = next_desc;
            for (size_t i = 0; i < chain.size(); ++i) {
                const bool last = i + 1 == chain.size();
                desc_at(h().desc, next_desc, std::get<0>(chain[i]), std::get<1>(chain[i]),
                        std::get<2>(chain[i]) | (last ? 0 : kDescFNext), static_cast<uint16_t>(next_desc + 1));
                ++next_desc;
            }
        }
        le::store16(mem() + h().avail + kAvailRing + 2 * (avail_idx % size), head);
        ++avail_idx;
        le::store16(mem() + h().avail + kAvailIdx, avail_idx);
    }
};

void write_seeds(const std::string& dir)
{
    auto save = [&](const std::string& name, const SeedBuilder& s) {
        std::ofstream(dir + "/seed-" + name, std::ios::binary)
            .write(reinterpret_cast<const char*>(s.bytes.data()), static_cast<std::streamsize>(s.bytes.size()));
    };
    {
        SeedBuilder s(kIndirect | kEventIdx);
        s.request(blk::kTOut, 2, {{1024, false}}, false);
        s.request(blk::kTIn, 2, {{512, true}, {512, true}}, true);
        s.request(blk::kTFlush, 0, {}, false);
        save("rw", s);
    }
    {
        SeedBuilder s(kIndirect);
        s.request(blk::kTGetId, 0, {{20, true}}, true);
        std::vector<uint8_t> seg(16, 0);
        seg[0] = 4;   // sector 4, 8 sectors, flags 0 / unmap
        seg[8] = 8;
        s.request(blk::kTDiscard, 0, {{16, false, seg}}, false);
        seg[12] = blk::kSegFlagUnmap;
        s.request(blk::kTWriteZeroes, 0, {{16, false, seg}}, true);
        save("misc", s);
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***)
{
    spdlog::set_level(spdlog::level::off);
    if (const char* dir = std::getenv("KVMINI_FUZZ_SEED_DIR")) write_seeds(dir);
    // A scratch image per process (flock'd by the device), unlinked at once.
    const char* shm = "/dev/shm";
    std::string tmpl = std::string(::access(shm, W_OK) == 0 ? shm : "/tmp") + "/kvmini-fuzz-XXXXXX";
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0 || ::ftruncate(fd, 64 * 1024) < 0) std::abort();
    g_blk = std::make_unique<VirtioBlk>(DiskOptions{tmpl, false, "fuzz"});
    ::close(fd);
    ::unlink(tmpl.c_str());
    g_mem = std::make_unique<GuestMemory>(kRam);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < sizeof(Header)) return 0;
    Header h;
    std::memcpy(&h, data, sizeof(h));
    GuestMemory& mem = *g_mem;
    mem.fill(0, 0, kRam);
    mem.write(0, data + sizeof(h), std::min<uint64_t>(size - sizeof(h), kRam));

    VirtQueue vq(mem, kMaxQueue);
    vq.set_size((h.flags & kRawSize) ? h.raw_size : static_cast<uint16_t>(1u << (h.size_log2 % 10)));
    vq.set_desc_addr(h.desc);
    vq.set_avail_addr(h.avail);
    vq.set_used_addr(h.used);
    vq.set_features(((h.flags & kIndirect) ? feature(kFRingIndirectDesc) : 0) |
                    ((h.flags & kEventIdx) ? feature(kFRingEventIdx) : 0));
    if (!vq.enable()) return 0;

    VirtqChain chain;
    unsigned served = 0;
    for (unsigned round = 0; round < 2u * vq.size() + 4; ++round) {
        const VirtqPop r = vq.pop(chain);
        if (r != VirtqPop::kChain) break;
        uint64_t readable = 0, writable = 0;
        for (const auto* list : {&chain.readable, &chain.writable})
            for (const VirtqBuffer& b : *list) {
                if (b.host && !inside_ram(mem, b.host, b.len)) __builtin_trap();   // never outside RAM
                if (!b.host && chain.buffers_ok) __builtin_trap();
                (list == &chain.readable ? readable : writable) += b.len;
            }
        if (readable != chain.readable_bytes || writable != chain.writable_bytes) __builtin_trap();
        const uint32_t written = g_blk->process(0, chain);
        if (written > chain.writable_bytes) __builtin_trap();
        vq.push(chain.head, written);
        ++served;
        vq.needs_interrupt();
        if (!vq.prepare_wait()) break;
    }
    if (vq.used_idx() != static_cast<uint16_t>(served)) __builtin_trap();
    return 0;
}
