// The host side of the guest's serial console: stdin to the UART, the UART to
// stdout, as QEMU's -nographic.
//
// When the input is a terminal, start() puts it in raw mode (no echo, no line
// editing, no signals from Ctrl-C/Ctrl-Z/Ctrl-\: those keys go to the guest;
// output processing is left as it was) and the terminal's settings are put
// back on every way out: stop(), the destructor, exit() (an atexit hook) and
// the fatal signals SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGABRT (a
// handler restores, then hands the signal to the handler that was there
// before, or re-raises it with the default action). Signals a program blocks
// (e.g. read from a signalfd) never reach that handler; the program stops in
// order and the destructor restores. When the input is not a terminal (a pipe,
// a file, nothing at all in CI) no termios call is made.
//
// QEMU's escape key: Ctrl-A x quits (calls the quit callback), Ctrl-A h or ?
// prints help, Ctrl-A Ctrl-A sends one Ctrl-A to the guest; Ctrl-A followed by
// anything else is dropped.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "vmm/event_fd.h"
#include "vmm/unique_fd.h"

namespace kvmini {

// The Ctrl-A prefix handling, byte by byte, with no I/O.
class EscapeParser {
public:
    static constexpr uint8_t kEscape = 0x01;  // Ctrl-A

    enum class Action {
        kNone,     // swallowed (the escape key, or an unknown command after it)
        kForward,  // give this byte to the guest
        kQuit,     // Ctrl-A x
        kHelp,     // Ctrl-A h or Ctrl-A ?
    };

    Action feed(uint8_t byte);
    // True after a lone Ctrl-A, waiting for the command byte.
    bool escape_pending() const { return escaped_; }

private:
    bool escaped_ = false;
};

class Terminal {
public:
    // Bytes typed for the guest (the UART's receive), on the input thread.
    using InputCallback = std::function<void(std::span<const uint8_t>)>;
    // Ctrl-A x, on the input thread. May be called more than once.
    using QuitCallback = std::function<void()>;

    struct Stats {
        uint64_t bytes_in = 0;        // bytes forwarded to the input callback
        uint64_t bytes_out = 0;       // bytes written to the output
        uint64_t output_dropped = 0;  // bytes lost to a write error (closed stdout...)
    };

    // The fds are borrowed, not closed.
    explicit Terminal(int in_fd = STDIN_FILENO, int out_fd = STDOUT_FILENO);
    ~Terminal();
    Terminal(const Terminal&) = delete;
    Terminal& operator=(const Terminal&) = delete;

    // Enters raw mode (if the input is a tty) and starts the input thread.
    // Neither callback may call stop() or destroy the Terminal. Throws Error
    // if called twice or the thread cannot be set up.
    void start(InputCallback on_input, QuitCallback on_quit);
    // Stops and joins the input thread and restores the terminal. Idempotent.
    void stop();

    // Writes all of `bytes` to the output (retrying on EINTR, partial writes
    // and EAGAIN); on an error the rest is dropped and counted. Thread-safe,
    // usable as the UART's sink.
    void write(std::span<const uint8_t> bytes);

    // True while the input tty is in raw mode.
    bool raw_mode() const { return raw_mode_.load(); }
    // True once the input thread stopped reading (end of file or an error).
    bool input_ended() const { return input_ended_.load(); }
    Stats stats() const;

    // Puts back the saved terminal settings, if raw mode is on. Async-signal-
    // safe; what the atexit and signal hooks call.
    static void restore_saved_settings() noexcept;

private:
    void enter_raw_mode();
    void leave_raw_mode();
    void input_loop();
    void print_help();

    int in_fd_;
    int out_fd_;
    InputCallback on_input_;
    QuitCallback on_quit_;
    std::optional<EventFd> stop_;  // tells the input thread to stop; made by start()
    std::thread thread_;
    bool started_ = false;
    std::atomic<bool> raw_mode_{false};
    std::atomic<bool> input_ended_{false};

    std::mutex out_mutex_;  // whole writes, not interleaved
    std::atomic<uint64_t> bytes_in_{0};
    std::atomic<uint64_t> bytes_out_{0};
    std::atomic<uint64_t> output_dropped_{0};
    bool output_error_logged_ = false;  // under out_mutex_
};

}  // namespace kvmini
