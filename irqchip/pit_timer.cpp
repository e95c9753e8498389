#include "irqchip/pit_timer.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "irqchip/pit_8254.h"
#include "vmm/error.h"

namespace kvmini {

PitTimer::PitTimer(Pit8254& pit)
    : pit_(pit),
      timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))
{
    if (!timer_.valid()) throw_errno("timerfd_create (PIT)");
    if (!wake_.valid()) throw_errno("eventfd (PIT)");
    thread_ = std::thread([this] { loop(); });
}

PitTimer::~PitTimer()
{
    stop_.store(true);
    poke();
    if (thread_.joinable()) thread_.join();
}

void PitTimer::poke()
{
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
}

void PitTimer::loop()
{
    constexpr uint64_t kNsPerSecond = 1'000'000'000;
    while (!stop_.load()) {
        itimerspec when{};
        if (auto next = pit_.next_event_ns()) {
            // An absolute time of 0 would disarm the timer: fire at once instead.
            const uint64_t at = *next ? *next : 1;
            when.it_value.tv_sec = static_cast<time_t>(at / kNsPerSecond);
            when.it_value.tv_nsec = static_cast<long>(at % kNsPerSecond);
        }
        if (::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &when, nullptr) != 0) {
            spdlog::error("PIT: timerfd_settime: {}", std::strerror(errno));
            return;
        }
        pollfd fds[2] = {{timer_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) continue;
        uint64_t count;
        if (fds[1].revents & POLLIN) [[maybe_unused]] ssize_t n = ::read(wake_.get(), &count, sizeof count);
        if (fds[0].revents & POLLIN) {
            [[maybe_unused]] ssize_t n = ::read(timer_.get(), &count, sizeof count);
            wakeups_.fetch_add(1, std::memory_order_relaxed);
            pit_.on_timer(Pit8254::monotonic_ns());
        }
    }
}

}  // namespace kvmini
