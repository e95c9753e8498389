// How the interrupt-controller models hand out their outputs: events are
// queued under the model's lock and delivered in order with the lock
// released, by whichever caller finds the outbox idle. So an output callback
// may call back into the model (an EOI from inside a delivery, a tick
// acknowledged from inside its own pulse) without deadlock or reordering; a
// caller may return before another thread delivered the event it caused.
#pragma once

#include <deque>
#include <mutex>
#include <utility>

namespace kvmini {

template <typename Event>
class OrderedOutbox {
public:
    // With the model's lock held.
    void push(Event event) { events_.push_back(std::move(event)); }

    // Called with `lock` held; returns with it held. Each queued event goes
    // to handle(event) with the lock released, then to settled(event, ok)
    // with it held again (ok is false when handle threw; the exception then
    // propagates). Returns at once if a delivery is already under way (in
    // another thread, or an outer frame of this one): that one drains.
    template <typename Handle, typename Settled>
    void drain(std::unique_lock<std::mutex>& lock, Handle&& handle, Settled&& settled)
    {
        if (delivering_) return;
        delivering_ = true;
        struct Idle {
            bool& flag;
            ~Idle() { flag = false; }
        } idle{delivering_};
        while (!events_.empty()) {
            const Event event = std::move(events_.front());
            events_.pop_front();
            lock.unlock();
            try {
                handle(event);
            } catch (...) {
                lock.lock();
                settled(event, false);
                throw;
            }
            lock.lock();
            settled(event, true);
        }
    }
    template <typename Handle>
    void drain(std::unique_lock<std::mutex>& lock, Handle&& handle)
    {
        drain(lock, std::forward<Handle>(handle), [](const Event&, bool) {});
    }

private:
    std::deque<Event> events_;
    bool delivering_ = false;
};

}  // namespace kvmini
