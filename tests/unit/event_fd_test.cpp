#include "vmm/event_fd.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <thread>

namespace kvmini {
namespace {

bool readable(const EventFd& e, int timeout_ms = 0)
{
    pollfd p{e.fd(), POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

TEST(EventFd, SignalMakesItReadableAndDrainResetsTheCount)
{
    EventFd e("test");
    EXPECT_FALSE(readable(e));
    EXPECT_EQ(e.drain(), 0u);  // nothing signalled: does not block
    EXPECT_TRUE(e.signal());
    EXPECT_TRUE(e.signal());
    EXPECT_TRUE(readable(e));
    EXPECT_EQ(e.drain(), 2u);
    EXPECT_FALSE(readable(e));
}

TEST(EventFd, WakesAThreadInPoll)
{
    EventFd e("test");
    std::thread t([&] { e.signal(); });
    EXPECT_TRUE(readable(e, 5000));
    t.join();
}

}  // namespace
}  // namespace kvmini
