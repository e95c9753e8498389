// Exit counters, counted where the exits happen (the vCPU loop) and read in
// one place (`kvmini run --stats`, the mode comparison).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

namespace kvmini {

struct ExitStats {
    static constexpr size_t kReasons = 64;  // KVM_EXIT_* values are below this
    std::array<std::atomic<uint64_t>, kReasons> by_reason{};
    std::atomic<uint64_t> kicks{0};                  // KVM_RUN returned EINTR
    std::atomic<uint64_t> int3_completions{0};       // INT3 finished for KVM (#BP injected)
    std::atomic<uint64_t> intn_completions{0};       // INT n finished for KVM
    std::atomic<uint64_t> fwait_completions{0};      // FWAIT finished for KVM
    // Port I/O exits per port, to see where the exits go.
    std::unique_ptr<std::array<std::atomic<uint32_t>, 0x10000>> by_port =
        std::make_unique<std::array<std::atomic<uint32_t>, 0x10000>>();

    // Nanoseconds (steady clock) at the first KVM_RUN of any vCPU; 0 before.
    std::atomic<int64_t> first_run_ns{0};

    void count(uint32_t reason)
    {
        by_reason[reason < kReasons ? reason : kReasons - 1].fetch_add(1, std::memory_order_relaxed);
    }
};

const char* exit_reason_name(uint32_t reason);

}  // namespace kvmini
