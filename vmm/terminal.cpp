#include "vmm/terminal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <termios.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <system_error>
#include <vector>

#include <spdlog/spdlog.h>

#include "vmm/error.h"

namespace kvmini {

// ---- EscapeParser ----

EscapeParser::Action EscapeParser::feed(uint8_t byte)
{
    if (!escaped_) {
        if (byte == kEscape) {
            escaped_ = true;
            return Action::kNone;
        }
        return Action::kForward;
    }
    escaped_ = false;
    switch (byte) {
    case kEscape:
        return Action::kForward;  // Ctrl-A Ctrl-A: one Ctrl-A for the guest
    case 'x':
    case 'X':
        return Action::kQuit;
    case 'h':
    case 'H':
    case '?':
        return Action::kHelp;
    default:
        return Action::kNone;
    }
}

// ---- Saved terminal settings and the hooks that restore them ----
//
// Process-wide, because the atexit and signal hooks cannot reach a Terminal:
// at most one Terminal holds raw mode at a time.
namespace {

std::atomic<int> g_raw_fd{-1};  // the tty whose settings g_saved holds; -1 = none
termios g_saved{};              // written only while g_raw_fd is -1
std::mutex g_raw_mutex;         // serialises entering/leaving raw mode

// Signals that end the process by default, so the tty must be restored first.
constexpr int kRestoreSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV,
                                   SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGPIPE};
constexpr size_t kRestoreSignalCount = sizeof kRestoreSignals / sizeof kRestoreSignals[0];
struct sigaction g_previous[kRestoreSignalCount];  // what was installed before ours
bool g_handlers_installed = false;                  // under g_raw_mutex

static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free atomic");

extern "C" void restore_on_signal(int sig, siginfo_t* info, void* context)
{
    const int saved_errno = errno;
    Terminal::restore_saved_settings();
    for (size_t i = 0; i < kRestoreSignalCount; ++i) {
        if (kRestoreSignals[i] != sig) continue;
        const struct sigaction& prev = g_previous[i];
        if (prev.sa_flags & SA_SIGINFO) {
            if (prev.sa_sigaction) {
                prev.sa_sigaction(sig, info, context);
                errno = saved_errno;
                return;
            }
        } else if (prev.sa_handler == SIG_IGN) {
            errno = saved_errno;
            return;
        } else if (prev.sa_handler != SIG_DFL) {
            prev.sa_handler(sig);
            errno = saved_errno;
            return;
        }
        break;
    }
    // The default action: reinstate it and send the signal again; it is
    // delivered (and ends the process) as soon as this handler returns.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, nullptr);
    raise(sig);
    errno = saved_errno;
}

void restore_at_exit() { Terminal::restore_saved_settings(); }

// Called with g_raw_mutex held.
void install_restore_hooks()
{
    static bool atexit_registered = false;
    if (!atexit_registered) {
        if (std::atexit(restore_at_exit) != 0) spdlog::warn("terminal: cannot register the atexit restore hook");
        atexit_registered = true;
    }
    if (g_handlers_installed) return;
    struct sigaction sa {};
    sa.sa_sigaction = restore_on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < kRestoreSignalCount; ++i) {
        if (sigaction(kRestoreSignals[i], &sa, &g_previous[i]) != 0)
            spdlog::warn("terminal: cannot hook signal {}: {}", kRestoreSignals[i], std::strerror(errno));
    }
    g_handlers_installed = true;
}

// Called with g_raw_mutex held. Puts the previous handlers back, unless
// someone installed another handler over ours since.
void remove_restore_hooks()
{
    if (!g_handlers_installed) return;
    for (size_t i = 0; i < kRestoreSignalCount; ++i) {
        struct sigaction current {};
        if (sigaction(kRestoreSignals[i], nullptr, &current) != 0) continue;
        if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == restore_on_signal)
            sigaction(kRestoreSignals[i], &g_previous[i], nullptr);
    }
    g_handlers_installed = false;
}

}  // namespace

void Terminal::restore_saved_settings() noexcept
{
    const int fd = g_raw_fd.exchange(-1);
    if (fd >= 0) tcsetattr(fd, TCSANOW, &g_saved);  // async-signal-safe
}

// ---- Terminal ----

Terminal::Terminal(int in_fd, int out_fd) : in_fd_(in_fd), out_fd_(out_fd) {}

Terminal::~Terminal() { stop(); }

void Terminal::start(InputCallback on_input, QuitCallback on_quit)
{
    if (started_) throw Error("terminal: already started");
    on_input_ = std::move(on_input);
    on_quit_ = std::move(on_quit);
    input_ended_ = false;
    if (in_fd_ < 0 || ::fcntl(in_fd_, F_GETFD) < 0) {
        // No input at all (stdin closed): nothing to read, nothing to restore.
        spdlog::debug("terminal: no input (fd {} is not open)", in_fd_);
        input_ended_ = true;
        started_ = true;
        return;
    }
    stop_.emplace("terminal");
    enter_raw_mode();
    try {
        thread_ = std::thread([this] { input_loop(); });
    } catch (const std::system_error& e) {
        leave_raw_mode();
        throw Error(std::string("terminal: cannot start the input thread: ") + e.what());
    }
    started_ = true;
}

void Terminal::stop()
{
    if (thread_.joinable()) {
        if (!stop_->signal())
            spdlog::error("terminal: cannot signal the input thread: {}", std::strerror(errno));
        if (thread_.get_id() == std::this_thread::get_id()) {
            // A callback broke the rule; the thread ends once it returns, and
            // is joined by a later stop() from another thread.
            spdlog::error("terminal: stop() called from the input thread");
            leave_raw_mode();
            return;
        }
        thread_.join();
    }
    started_ = false;
    leave_raw_mode();
}

void Terminal::enter_raw_mode()
{
    if (!::isatty(in_fd_)) return;  // a pipe, a file or nothing: no termios at all
    termios tio{};
    if (tcgetattr(in_fd_, &tio) != 0) {
        spdlog::warn("terminal: cannot read the terminal settings: {}", std::strerror(errno));
        return;
    }
    std::lock_guard lock(g_raw_mutex);
    if (g_raw_fd.load() >= 0) {
        spdlog::warn("terminal: another terminal is in raw mode; leaving this one as it is");
        return;
    }
    g_saved = tio;
    install_restore_hooks();
    g_raw_fd.store(in_fd_);  // from here on every exit path restores

    // Input raw, as cfmakeraw(); output processing left as the user had it.
    termios raw = tio;
    raw.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    raw.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    raw.c_cflag &= ~(CSIZE | PARENB);
    raw.c_cflag |= CS8;
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(in_fd_, TCSANOW, &raw) != 0) {
        spdlog::warn("terminal: cannot enter raw mode: {}", std::strerror(errno));
        g_raw_fd.store(-1);
        remove_restore_hooks();
        return;
    }
    raw_mode_ = true;
}

void Terminal::leave_raw_mode()
{
    if (!raw_mode_) return;
    std::lock_guard lock(g_raw_mutex);
    restore_saved_settings();
    remove_restore_hooks();
    raw_mode_ = false;
}

void Terminal::input_loop()
{
    pollfd fds[2] = {{in_fd_, POLLIN, 0}, {stop_->fd(), POLLIN, 0}};
    EscapeParser parser;
    std::vector<uint8_t> forward;
    uint8_t buf[256];

    auto flush = [&] {
        if (forward.empty()) return;
        bytes_in_ += forward.size();
        if (on_input_) on_input_(forward);
        forward.clear();
    };

    for (;;) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            spdlog::error("terminal: poll: {}", std::strerror(errno));
            break;
        }
        if (fds[1].revents) return;  // stop(): not an end of input
        if (fds[0].revents & POLLNVAL) {
            spdlog::debug("terminal: no input (fd {} is not open)", in_fd_);
            break;
        }
        if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t n = ::read(in_fd_, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            spdlog::debug("terminal: input ended: {}", std::strerror(errno));
            break;
        }
        if (n == 0) {
            spdlog::debug("terminal: end of input");
            break;
        }
        try {
            for (ssize_t i = 0; i < n; ++i) {
                switch (parser.feed(buf[i])) {
                case EscapeParser::Action::kForward:
                    forward.push_back(buf[i]);
                    break;
                case EscapeParser::Action::kQuit:
                    flush();
                    if (on_quit_) on_quit_();
                    break;
                case EscapeParser::Action::kHelp:
                    flush();
                    print_help();
                    break;
                case EscapeParser::Action::kNone:
                    break;
                }
            }
            flush();
        } catch (const std::exception& e) {
            forward.clear();
            spdlog::error("terminal: input callback failed: {}", e.what());
        }
    }
    input_ended_ = true;
}

void Terminal::print_help()
{
    // \r\n: the output may be a raw terminal.
    static constexpr std::string_view kHelp =
        "\r\nkvmini console escapes:\r\n"
        "  C-a x    exit kvmini\r\n"
        "  C-a h    print this help\r\n"
        "  C-a C-a  send C-a to the guest\r\n";
    write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(kHelp.data()), kHelp.size()));
}

void Terminal::write(std::span<const uint8_t> bytes)
{
    std::lock_guard lock(out_mutex_);
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(out_fd_, bytes.data() + done, bytes.size() - done);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            // A non-blocking output (shared with another program): wait for room.
            pollfd p{out_fd_, POLLOUT, 0};
            if (::poll(&p, 1, -1) >= 0 || errno == EINTR) continue;
        }
        const int err = n < 0 ? errno : EIO;
        output_dropped_ += bytes.size() - done;
        if (!output_error_logged_) {
            spdlog::warn("terminal: output write failed, dropping console output: {}", std::strerror(err));
            output_error_logged_ = true;
        }
        break;
    }
    bytes_out_ += done;
}

Terminal::Stats Terminal::stats() const
{
    return Stats{bytes_in_.load(), bytes_out_.load(), output_dropped_.load()};
}

}  // namespace kvmini
