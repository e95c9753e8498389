// Boot files (kernel, initrd, Multiboot modules) that are not regular files
// are refused at once: a FIFO named as -k or -i used to block kvmini in
// open() until a writer came, with the stop signals already blocked
// (issue 13, finding 4).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>

#include "tests/unit/boot_test_util.h"
#include "vmm/boot/boot_file.h"

namespace kvmini {
namespace {

using namespace std::chrono_literals;
using boot_util::BootFile;
using boot_test::TempDir;

TEST(BootFile, FifoIsRefusedWithoutWaitingForAWriter)
{
    TempDir dir;
    const std::string fifo = dir.path("kernel.fifo");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    // On a thread, so that the old blocking open() shows as a failure here,
    // not as a test run that never ends: the FIFO is then opened for writing
    // to release it.
    auto opened = std::async(std::launch::async, [&] {
        try {
            BootFile file(fifo, "kernel");
            return std::string("accepted");
        } catch (const Error& e) {
            return std::string(e.what());
        }
    });
    if (opened.wait_for(2s) != std::future_status::ready) {
        const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
        ADD_FAILURE() << "open() of a FIFO waited for a writer";
        opened.wait();
        if (fd >= 0) ::close(fd);
        return;
    }
    EXPECT_NE(opened.get().find("kernel is not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace kvmini
