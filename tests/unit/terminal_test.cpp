// The console's escape parser, and the Terminal driven through pipes and a
// pseudo-terminal (raw mode and its restoration on stop, exit and signals).
#include "vmm/terminal.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vmm/error.h"
#include "vmm/unique_fd.h"

namespace kvmini {
namespace {

using Action = EscapeParser::Action;
using namespace std::chrono_literals;

std::vector<Action> feed_all(EscapeParser& p, std::string_view bytes)
{
    std::vector<Action> out;
    for (char c : bytes) out.push_back(p.feed(static_cast<uint8_t>(c)));
    return out;
}

TEST(EscapeParserTest, PlainBytesAreForwarded)
{
    EscapeParser p;
    EXPECT_EQ(feed_all(p, "ax\x03\r"), (std::vector<Action>(4, Action::kForward)));
    EXPECT_FALSE(p.escape_pending());
}

TEST(EscapeParserTest, CtrlAXQuits)
{
    EscapeParser p;
    EXPECT_EQ(p.feed(0x01), Action::kNone);
    EXPECT_TRUE(p.escape_pending());
    EXPECT_EQ(p.feed('x'), Action::kQuit);
    EXPECT_FALSE(p.escape_pending());
    EXPECT_EQ(feed_all(p, "\x01X"), (std::vector<Action>{Action::kNone, Action::kQuit}));
}

TEST(EscapeParserTest, DoubleCtrlASendsOneCtrlA)
{
    EscapeParser p;
    EXPECT_EQ(feed_all(p, "\x01\x01\x01\x01x"), (std::vector<Action>{Action::kNone, Action::kForward, Action::kNone,
                                                                     Action::kForward, Action::kForward}));
}

TEST(EscapeParserTest, HelpAndUnknownCommands)
{
    EscapeParser p;
    EXPECT_EQ(feed_all(p, "\x01h\x01?"),
              (std::vector<Action>{Action::kNone, Action::kHelp, Action::kNone, Action::kHelp}));
    // Unknown command: both bytes swallowed, and the escape is over.
    EXPECT_EQ(feed_all(p, "\x01qq"), (std::vector<Action>{Action::kNone, Action::kNone, Action::kForward}));
    EXPECT_EQ(feed_all(p, "x"), (std::vector<Action>{Action::kForward}));
}

// Collects what the Terminal hands over, and waits for it.
class Recorder {
public:
    void input(std::span<const uint8_t> bytes)
    {
        std::lock_guard lock(mutex_);
        events_.emplace_back(bytes.begin(), bytes.end());
        text_.append(bytes.begin(), bytes.end());
        cv_.notify_all();
    }
    void quit()
    {
        std::lock_guard lock(mutex_);
        events_.push_back("<quit>");
        ++quits_;
        cv_.notify_all();
    }
    // Waits until the concatenated input equals `text` and `quits` quits came.
    bool wait_for(const std::string& text, int quits = 0)
    {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, 5s, [&] { return text_ == text && quits_ == quits; });
    }
    std::vector<std::string> events()
    {
        std::lock_guard lock(mutex_);
        return events_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::string> events_;
    std::string text_;
    int quits_ = 0;
};

struct Pipe {
    Pipe()
    {
        int fds[2];
        EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
        read_end.reset(fds[0]);
        write_end.reset(fds[1]);
    }
    void put(std::string_view s)
    {
        ASSERT_EQ(::write(write_end.get(), s.data(), s.size()), static_cast<ssize_t>(s.size()));
    }
    UniqueFd read_end;
    UniqueFd write_end;
};

// Reads what is available from `fd` within `timeout`, until `want` bytes.
std::string drain(int fd, size_t want, std::chrono::milliseconds timeout = 5000ms)
{
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        char buf[65536];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
    }
    return got;
}

bool wait_until(const std::function<bool()>& cond)
{
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!cond()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

class TerminalPipeTest : public ::testing::Test {
protected:
    void start()
    {
        term_.start([this](std::span<const uint8_t> b) { rec_.input(b); }, [this] { rec_.quit(); });
    }
    Pipe in_;
    Pipe out_;
    Recorder rec_;
    Terminal term_{in_.read_end.get(), out_.write_end.get()};
};

TEST_F(TerminalPipeTest, ForwardsInputAndNeverTouchesTermiosOnAPipe)
{
    start();
    EXPECT_FALSE(term_.raw_mode());
    in_.put("hello\n");
    EXPECT_TRUE(rec_.wait_for("hello\n"));
    EXPECT_EQ(term_.stats().bytes_in, 6u);
}

TEST_F(TerminalPipeTest, CtrlAXCallsQuitInOrderWithData)
{
    start();
    in_.put("ab\x01xcd");
    ASSERT_TRUE(rec_.wait_for("abcd", 1));
    EXPECT_EQ(rec_.events(), (std::vector<std::string>{"ab", "<quit>", "cd"}));
}

TEST_F(TerminalPipeTest, CtrlACtrlASendsOneCtrlA)
{
    start();
    in_.put("\x01\x01z");
    EXPECT_TRUE(rec_.wait_for("\x01z"));
}

TEST_F(TerminalPipeTest, EscapeSplitAcrossReads)
{
    start();
    in_.put("a\x01");
    ASSERT_TRUE(rec_.wait_for("a"));
    in_.put("x");
    EXPECT_TRUE(rec_.wait_for("a", 1));
}

TEST_F(TerminalPipeTest, HelpGoesToTheOutput)
{
    start();
    in_.put("\x01h");
    const std::string help = drain(out_.read_end.get(), 30);
    EXPECT_NE(help.find("C-a x"), std::string::npos) << help;
    EXPECT_TRUE(rec_.events().empty());
}

TEST_F(TerminalPipeTest, EndOfInputStopsReadingOnly)
{
    start();
    in_.put("last");
    in_.write_end.reset();
    EXPECT_TRUE(rec_.wait_for("last"));
    EXPECT_TRUE(wait_until([&] { return term_.input_ended(); }));
    const std::string s = "still writing";
    term_.write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
    EXPECT_EQ(drain(out_.read_end.get(), s.size()), s);
    term_.stop();
}

TEST_F(TerminalPipeTest, StopJoinsAnIdleInputThreadAndIsIdempotent)
{
    start();
    const auto t0 = std::chrono::steady_clock::now();
    term_.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    EXPECT_FALSE(term_.input_ended());
    term_.stop();
    // Can start again.
    start();
    in_.put("again");
    EXPECT_TRUE(rec_.wait_for("again"));
}

TEST_F(TerminalPipeTest, StartTwiceThrows)
{
    start();
    EXPECT_THROW(start(), Error);
}

TEST(TerminalTest, NoInputAtAllIsNotAnError)
{
    // CI runs with no standard input: a closed fd.
    Pipe out;
    const int closed_fd = 987;
    ASSERT_LT(::fcntl(closed_fd, F_GETFD), 0);
    Terminal term(closed_fd, out.write_end.get());
    term.start([](std::span<const uint8_t>) {}, [] {});
    EXPECT_TRUE(wait_until([&] { return term.input_ended(); }));
    EXPECT_FALSE(term.raw_mode());
}

TEST(TerminalWriteTest, LargeWriteArrivesWholeAndInOrder)
{
    Pipe out;
    Terminal term(-1, out.write_end.get());
    std::string data(1 << 20, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
    std::string got;
    std::thread reader([&] { got = drain(out.read_end.get(), data.size(), 10000ms); });
    term.write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
    reader.join();
    EXPECT_EQ(got.size(), data.size());
    EXPECT_TRUE(got == data);
    EXPECT_EQ(term.stats().bytes_out, data.size());
    EXPECT_EQ(term.stats().output_dropped, 0u);
}

TEST(TerminalWriteTest, NonBlockingFullOutputWaitsForRoom)
{
    Pipe out;
    ASSERT_EQ(::fcntl(out.write_end.get(), F_SETFL, O_NONBLOCK), 0);
    Terminal term(-1, out.write_end.get());
    const std::string data(256 * 1024, 'q');  // more than a pipe holds
    std::string got;
    std::thread reader([&] {
        std::this_thread::sleep_for(50ms);  // let the writer hit EAGAIN
        got = drain(out.read_end.get(), data.size(), 10000ms);
    });
    term.write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
    reader.join();
    EXPECT_EQ(got.size(), data.size());
    EXPECT_EQ(term.stats().output_dropped, 0u);
}

TEST(TerminalWriteTest, ClosedOutputDropsAndCounts)
{
    struct sigaction ignore {}, old{};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ignore, &old);
    {
        Pipe out;
        out.read_end.reset();
        Terminal term(-1, out.write_end.get());
        const uint8_t bytes[3] = {1, 2, 3};
        term.write(bytes);
        term.write(bytes);
        EXPECT_EQ(term.stats().output_dropped, 6u);
        EXPECT_EQ(term.stats().bytes_out, 0u);
    }
    sigaction(SIGPIPE, &old, nullptr);
}

// ---- With a real (pseudo) terminal ----

class TerminalPtyTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        int master = -1, slave = -1;
        if (::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) GTEST_SKIP() << "no pseudo-terminals here";
        master_.reset(master);
        slave_.reset(slave);
        ASSERT_EQ(tcgetattr(slave_.get(), &cooked_), 0);
        ASSERT_TRUE(cooked_.c_lflag & ICANON);
        ASSERT_TRUE(cooked_.c_lflag & ECHO);
        ASSERT_TRUE(cooked_.c_lflag & ISIG);
    }
    termios now() const
    {
        termios t{};
        EXPECT_EQ(tcgetattr(slave_.get(), &t), 0);
        return t;
    }
    bool restored() const
    {
        const termios t = now();
        return t.c_lflag == cooked_.c_lflag && t.c_iflag == cooked_.c_iflag && t.c_cflag == cooked_.c_cflag &&
               t.c_oflag == cooked_.c_oflag;
    }
    // Runs `body` in a child process that owns a started Terminal on the pty
    // slave; returns the wait status.
    int in_child(const std::function<void(Terminal&)>& body)
    {
        std::fflush(nullptr);
        const pid_t pid = ::fork();
        if (pid == 0) {
            rlimit no_core{0, 0};
            setrlimit(RLIMIT_CORE, &no_core);
            auto* term = new Terminal(slave_.get(), slave_.get());  // never destroyed
            term->start([](std::span<const uint8_t>) {}, [] {});
            if (!term->raw_mode()) _exit(99);
            body(*term);
            _exit(98);
        }
        int status = 0;
        EXPECT_EQ(::waitpid(pid, &status, 0), pid);
        return status;
    }

    UniqueFd master_;
    UniqueFd slave_;
    termios cooked_{};
};

TEST_F(TerminalPtyTest, RawModeWhileStartedRestoredOnStop)
{
    Recorder rec;
    Terminal term(slave_.get(), slave_.get());
    term.start([&](std::span<const uint8_t> b) { rec.input(b); }, [&] { rec.quit(); });
    ASSERT_TRUE(term.raw_mode());
    const termios raw = now();
    EXPECT_FALSE(raw.c_lflag & (ICANON | ECHO | ISIG | IEXTEN));
    EXPECT_FALSE(raw.c_iflag & (ICRNL | IXON));
    EXPECT_EQ(raw.c_cflag & CSIZE, static_cast<tcflag_t>(CS8));
    EXPECT_EQ(raw.c_oflag, cooked_.c_oflag);  // output processing untouched
    // Ctrl-C is a byte for the guest, not a signal; no line buffering.
    ASSERT_EQ(::write(master_.get(), "\x03q\r", 3), 3);
    EXPECT_TRUE(rec.wait_for("\x03q\r"));
    term.stop();
    EXPECT_FALSE(term.raw_mode());
    EXPECT_TRUE(restored());
}

TEST_F(TerminalPtyTest, DestructorRestores)
{
    {
        Terminal term(slave_.get(), slave_.get());
        term.start([](std::span<const uint8_t>) {}, [] {});
        ASSERT_TRUE(term.raw_mode());
        EXPECT_FALSE(restored());
    }
    EXPECT_TRUE(restored());
}

TEST_F(TerminalPtyTest, OnlyOneTerminalHoldsRawMode)
{
    Terminal first(slave_.get(), slave_.get());
    Terminal second(slave_.get(), slave_.get());
    first.start([](std::span<const uint8_t>) {}, [] {});
    second.start([](std::span<const uint8_t>) {}, [] {});
    EXPECT_TRUE(first.raw_mode());
    EXPECT_FALSE(second.raw_mode());
    second.stop();
    EXPECT_FALSE(restored());  // still the first one's raw mode
    first.stop();
    EXPECT_TRUE(restored());
}

TEST_F(TerminalPtyTest, ExitRestoresThroughAtexitHook)
{
    const int status = in_child([](Terminal&) { std::exit(7); });
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 7);
    EXPECT_TRUE(restored());
}

TEST_F(TerminalPtyTest, FatalSignalRestoresAndReRaises)
{
    for (int sig : {SIGTERM, SIGINT, SIGSEGV, SIGABRT}) {
        const int status = in_child([sig](Terminal&) { ::raise(sig); });
        ASSERT_TRUE(WIFSIGNALED(status)) << "signal " << sig << " status " << status;
        EXPECT_EQ(WTERMSIG(status), sig);
        EXPECT_TRUE(restored()) << "signal " << sig;
    }
}

void exit_42(int) { _exit(42); }

TEST_F(TerminalPtyTest, SignalGoesOnToThePreviousHandler)
{
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        signal(SIGHUP, exit_42);
        auto* term = new Terminal(slave_.get(), slave_.get());
        term->start([](std::span<const uint8_t>) {}, [] {});
        ::raise(SIGHUP);
        _exit(0);
    }
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 42);
    EXPECT_TRUE(restored());
}

TEST_F(TerminalPtyTest, StopPutsBackPreviousSignalHandlers)
{
    struct sigaction before {};
    sigaction(SIGTERM, nullptr, &before);
    {
        Terminal term(slave_.get(), slave_.get());
        term.start([](std::span<const uint8_t>) {}, [] {});
        struct sigaction during {};
        sigaction(SIGTERM, nullptr, &during);
        EXPECT_TRUE(during.sa_flags & SA_SIGINFO);
    }
    struct sigaction after {};
    sigaction(SIGTERM, nullptr, &after);
    EXPECT_EQ(after.sa_handler, before.sa_handler);
    EXPECT_EQ(after.sa_flags & SA_SIGINFO, before.sa_flags & SA_SIGINFO);
}

}  // namespace
}  // namespace kvmini
