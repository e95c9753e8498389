// How a running machine ends. Any thread (a vCPU, a device, the terminal, a
// signal) asks to stop with an exit status and a reason; the first request
// wins, every vCPU is kicked out of KVM_RUN, and the main thread, waiting on
// event_fd(), collects them.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "vmm/event_fd.h"

namespace kvmini {

class Vcpu;

class VmControl {
public:
    void add_vcpu(Vcpu* vcpu)
    {
        std::lock_guard lock(mutex_);
        vcpus_.push_back(vcpu);
    }

    // How a vCPU is made to look again (the irqchip's kick, which also ends
    // a wait for interrupts); set once, before any vCPU thread starts.
    void set_kicker(std::function<void(Vcpu&)> kick) { kick_ = std::move(kick); }

    // The first request sets the exit status and reason; later ones are ignored.
    void request_stop(int exit_status, std::string reason);
    bool stopping() const { return stopping_.load(std::memory_order_acquire); }
    int exit_status() const { return exit_status_; }
    std::string reason() const
    {
        std::lock_guard lock(mutex_);
        return reason_;
    }
    // Readable once a stop was requested.
    int event_fd() const { return event_.fd(); }

private:
    mutable std::mutex mutex_;
    std::vector<Vcpu*> vcpus_;
    std::function<void(Vcpu&)> kick_;
    std::atomic<bool> stopping_{false};
    int exit_status_ = 0;
    std::string reason_;
    EventFd event_{"vm control"};
};

}  // namespace kvmini
