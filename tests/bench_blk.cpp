// Benchmark of the virtio-blk device model against the same file read
// directly: 4 KiB random reads (IOPS) and 1 MiB sequential reads (MB/s).
// The "guest" is the unit tests' driver harness, polling the used ring; the
// device runs its own I/O thread as in a VM. Built and run by
// scripts/bench-blk.sh; prints one "key value" line per figure.
//
// usage: bench_blk IMAGE [SECONDS_PER_TEST] [QUEUE_DEPTH]
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>

#include <spdlog/spdlog.h>

#include "tests/unit/virtio_driver_harness.h"

using namespace kvmini;
using namespace kvmini::virtio;
using Clock = std::chrono::steady_clock;

namespace {

struct Slot {
    uint64_t hdr, data, status;
};

// Keeps `depth` requests of `bytes` in flight for `seconds`; returns completed requests per second.
double device_run(test::VirtioPciDriver& d, test::TestMachine& m, uint64_t capacity_sectors, uint32_t bytes,
                  unsigned depth, double seconds, bool random)
{
    std::vector<Slot> slots;
    for (unsigned i = 0; i < depth; ++i)
        slots.push_back(Slot{m.alloc(16, 16), m.alloc(bytes, 4096), m.alloc(1, 1)});
    std::mt19937_64 rng(1);
    const uint64_t per = bytes / 512, positions = capacity_sectors / per;
    uint64_t next_seq = 0;
    std::map<uint16_t, unsigned> in_flight;   // head -> slot
    auto submit = [&](unsigned s) {
        const uint64_t sector = (random ? rng() % positions : next_seq++ % positions) * per;
        uint8_t h[16] = {};   // virtio_blk_req: type, reserved, sector
        le::store32(h, blk::kTIn);
        le::store64(h + 8, sector);
        m.mem.write(slots[s].hdr, h, sizeof(h));
        const uint16_t head =
            d.submit(0, {{slots[s].hdr, 16, false}, {slots[s].data, bytes, true}, {slots[s].status, 1, true}});
        in_flight[head] = s;
    };
    for (unsigned s = 0; s < depth; ++s) submit(s);
    uint64_t done = 0;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    for (;;) {
        auto u = d.poll_used(0);
        if (!u) {
            std::this_thread::yield();   // two threads (this "guest" and the device's) may share a core
            continue;
        }
        const unsigned s = in_flight.at(static_cast<uint16_t>(u->id));
        in_flight.erase(static_cast<uint16_t>(u->id));
        if (m.mem.read_obj<uint8_t>(slots[s].status) != blk::kSOk) {
            std::fprintf(stderr, "bench: request failed\n");
            std::exit(1);
        }
        ++done;
        if (Clock::now() >= end) break;
        submit(s);
    }
    while (!in_flight.empty())
        if (auto u = d.poll_used(0)) in_flight.erase(static_cast<uint16_t>(u->id));
    return static_cast<double>(done) / std::chrono::duration<double>(Clock::now() - start).count();
}

// The same access pattern with pread() on the file.
double direct_run(const std::string& path, uint64_t capacity_sectors, uint32_t bytes, double seconds, bool random)
{
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) std::exit(1);
    std::vector<uint8_t> buf(bytes);
    std::mt19937_64 rng(1);
    const uint64_t per = bytes / 512, positions = capacity_sectors / per;
    uint64_t next_seq = 0, done = 0;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
        const uint64_t sector = (random ? rng() % positions : next_seq++ % positions) * per;
        if (::pread(fd, buf.data(), bytes, static_cast<off_t>(sector * 512)) != static_cast<ssize_t>(bytes))
            std::exit(1);
        ++done;
    }
    ::close(fd);
    return static_cast<double>(done) / std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s IMAGE [SECONDS_PER_TEST] [QUEUE_DEPTH]\n", argv[0]);
        return 2;
    }
    const std::string path = argv[1];
    const double seconds = argc > 2 ? std::atof(argv[2]) : 3.0;
    const unsigned depth = argc > 3 ? static_cast<unsigned>(std::atoi(argv[3])) : 16;
    spdlog::set_level(spdlog::level::warn);
    try {
        test::TestMachine m(256ull << 20);
        VirtioPciTransport dev(m.mem, std::make_unique<VirtioBlk>(DiskOptions{path, true, ""}));
        const uint8_t slot = m.plug(dev);
        test::VirtioPciDriver d(m, slot);
        if (!d.init_blk(/*msix=*/true, feature(kFRingEventIdx), 256)) {
            std::fprintf(stderr, "bench: device did not initialise\n");
            return 1;
        }
        const uint64_t cap = static_cast<VirtioBlk&>(dev.device()).capacity_sectors();

        const double dev_iops = device_run(d, m, cap, 4096, depth, seconds, true);
        const double dir_iops = direct_run(path, cap, 4096, seconds, true);
        const double dev_seq = device_run(d, m, cap, 1 << 20, 4, seconds, false);
        const double dir_seq = direct_run(path, cap, 1 << 20, seconds, false);
        std::printf("randread4k_device_iops %.0f\n", dev_iops);
        std::printf("randread4k_direct_iops %.0f\n", dir_iops);
        std::printf("seqread1m_device_mbps %.1f\n", dev_seq * 1.048576);
        std::printf("seqread1m_direct_mbps %.1f\n", dir_seq * 1.048576);
        std::printf("queue_depth %u\n", depth);
        std::printf("interrupts_msix %llu\n", static_cast<unsigned long long>(dev.stats().msix_interrupts));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
