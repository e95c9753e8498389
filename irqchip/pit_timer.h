// The PIT's time source in the modes where kvmini emulates it: one thread
// sleeping on a timerfd armed for the PIT's next event
// (Pit8254::next_event_ns), woken early by poke() whenever the guest
// reprograms the PIT. Time is CLOCK_MONOTONIC, as Pit8254::monotonic_ns.
#pragma once

#include <atomic>
#include <thread>

#include "vmm/unique_fd.h"

namespace kvmini {

class Pit8254;

class PitTimer {
public:
    explicit PitTimer(Pit8254& pit);
    ~PitTimer();  // stops and joins the thread
    PitTimer(const PitTimer&) = delete;
    PitTimer& operator=(const PitTimer&) = delete;

    // The PIT was reprogrammed: re-read its next event.
    void poke();
    uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }

private:
    void loop();

    Pit8254& pit_;
    UniqueFd timer_;
    UniqueFd wake_;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> wakeups_{0};
    std::thread thread_;
};

}  // namespace kvmini
