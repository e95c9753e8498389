// RAII owner of an eventfd(2): a counter that one thread signals and another
// waits for with poll(2) on fd(), then drains. kvmini uses them to wake a
// thread that sleeps in poll (virtio's I/O thread, the terminal's input
// thread, a timer thread, the main thread waiting for a stop) and hands the
// virtio queues' ones to KVM as ioeventfds. Always non-blocking and
// close-on-exec: signal() and drain() never block.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "vmm/error.h"
#include "vmm/unique_fd.h"

namespace kvmini {

class EventFd {
public:
    // Throws Error "<owner>: eventfd: <errno>" if the kernel gives none.
    explicit EventFd(const std::string& owner) : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))
    {
        if (!fd_.valid()) throw_errno(owner + ": eventfd");
    }

    // Adds 1: fd() becomes readable. Only a write(2), so safe from any thread
    // and from a signal handler. False (errno set) if the write failed.
    bool signal() const noexcept
    {
        const uint64_t one = 1;
        return ::write(fd_.get(), &one, sizeof one) == static_cast<ssize_t>(sizeof one);
    }

    // Resets the counter; returns what it was (0: nothing was signalled).
    uint64_t drain() const noexcept
    {
        uint64_t count = 0;
        if (::read(fd_.get(), &count, sizeof count) != static_cast<ssize_t>(sizeof count)) return 0;
        return count;
    }

    // For poll(2), or for KVM (KVM_IOEVENTFD, KVM_IRQFD); stays owned here.
    int fd() const noexcept { return fd_.get(); }

private:
    UniqueFd fd_;
};

}  // namespace kvmini
