#include "irqchip/backends/deadline_timer.h"

#include <poll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstring>

#include <spdlog/spdlog.h>

#include "irqchip/models/pit_8254.h"
#include "vmm/error.h"

namespace kvmini {

namespace {
constexpr uint64_t kNsPerSecond = 1'000'000'000;
}

// One clock for every model and its timer thread: the PIT model's
// (CLOCK_MONOTONIC), which its bus adapters read too.
uint64_t DeadlineTimer::now_ns() { return Pit8254::monotonic_ns(); }

DeadlineTimer::DeadlineTimer(std::string name, NextEvent next, Fire fire)
    : name_(std::move(name)),
      next_(std::move(next)),
      fire_(std::move(fire)),
      timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)),
      wake_(name_)
{
    if (!timer_.valid()) throw_errno("timerfd_create (" + name_ + ")");
}

void DeadlineTimer::start()
{
    if (!thread_.joinable() && !stop_.load()) thread_ = std::thread([this] { loop(); });
}

DeadlineTimer::~DeadlineTimer() { stop(); }

void DeadlineTimer::stop()
{
    stop_.store(true);
    poke();
    if (thread_.joinable()) thread_.join();
}

void DeadlineTimer::poke()
{
    wake_.signal();
}

void DeadlineTimer::loop()
{
    while (!stop_.load()) {
        itimerspec when{};
        if (auto next = next_()) {
            // An absolute time of 0 would disarm the timer: fire at once instead.
            const uint64_t at = *next ? *next : 1;
            when.it_value.tv_sec = static_cast<time_t>(at / kNsPerSecond);
            when.it_value.tv_nsec = static_cast<long>(at % kNsPerSecond);
        }
        if (::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &when, nullptr) != 0) {
            spdlog::error("{}: timerfd_settime: {}", name_, std::strerror(errno));
            return;
        }
        pollfd fds[2] = {{timer_.get(), POLLIN, 0}, {wake_.fd(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) continue;
        uint64_t count;
        if (fds[1].revents & POLLIN) wake_.drain();
        if (fds[0].revents & POLLIN) {
            [[maybe_unused]] ssize_t n = ::read(timer_.get(), &count, sizeof count);
            wakeups_.fetch_add(1, std::memory_order_relaxed);
            try {
                fire_(now_ns());
            } catch (const std::exception& e) {
                // A timer thread never dies of a guest's doing: the event is
                // lost, as an undeliverable interrupt is on the hardware.
                spdlog::warn("{}: {}", name_, e.what());
            }
        }
    }
}

}  // namespace kvmini
