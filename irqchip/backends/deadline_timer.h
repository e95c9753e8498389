// A time source for the models that kvmini emulates (the 8254 PIT, the local
// APICs' timers): one thread sleeping on a timerfd armed for the models' next
// event, woken early by poke() whenever the guest reprogrammed one. The
// models keep no clock: `next()` says when the next event is due and
// `fire(now)` lets them act on it. Time is CLOCK_MONOTONIC nanoseconds
// (now_ns()).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "vmm/event_fd.h"
#include "vmm/unique_fd.h"

namespace kvmini {

class DeadlineTimer {
public:
    using NextEvent = std::function<std::optional<uint64_t>()>;
    using Fire = std::function<void(uint64_t now_ns)>;

    // `name` is for error messages. The thread starts with start(), once
    // whoever holds this object can be reached from next() and fire().
    DeadlineTimer(std::string name, NextEvent next, Fire fire);
    ~DeadlineTimer();  // stop()
    void start();
    // Ends and joins the thread (idempotent): after it, next() and fire()
    // are not called again. Owners stop it before they tear anything down.
    void stop();
    DeadlineTimer(const DeadlineTimer&) = delete;
    DeadlineTimer& operator=(const DeadlineTimer&) = delete;

    // A model was reprogrammed: ask next() again. Any thread, any time.
    void poke();
    uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }

    static uint64_t now_ns();

private:
    void loop();

    std::string name_;
    NextEvent next_;
    Fire fire_;
    UniqueFd timer_;
    EventFd wake_;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> wakeups_{0};
    std::thread thread_;
};

}  // namespace kvmini
