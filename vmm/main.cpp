// kvmini's entry point: parse the command line, set up logging, run the
// machine, turn any Error into a one-line reason and a non-zero exit status.
#include <signal.h>
#include <sys/signalfd.h>

#include <chrono>
#include <iostream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "vmm/cli.h"
#include "vmm/error.h"
#include "vmm/machine.h"

namespace {

// Logs go to stderr; stdout belongs to the guest's serial console.
void setup_logging(const std::string& level)
{
    auto logger = spdlog::stderr_color_mt("kvmini");
    logger->set_pattern("%^[%L]%$ %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(level));
}

// SIGINT/SIGTERM/SIGHUP/SIGQUIT are blocked in every thread and read from a
// signalfd by the main thread, which then stops the machine in order.
int block_stop_signals()
{
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&set, s);
    if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) kvmini::throw_errno("pthread_sigmask");
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (fd < 0) kvmini::throw_errno("signalfd");
    return fd;
}

}  // namespace

int main(int argc, char** argv)
{
    const int64_t start_ns = std::chrono::steady_clock::now().time_since_epoch() / std::chrono::nanoseconds(1);
    using kvmini::CliResult;
    const CliResult cli = kvmini::parse_cli(argc, argv, std::cout, std::cerr);
    if (cli.action == CliResult::Action::kExit) return cli.exit_status;
    if (cli.action == CliResult::Action::kVersion) {
        std::cout << "kvmini " << kvmini::kVersion << "\n";
        return 0;
    }
    setup_logging(cli.log_level);
    // A closed stdout loses console output (the terminal counts it); it must
    // not kill kvmini and the guest with it.
    ::signal(SIGPIPE, SIG_IGN);
    try {
        const int signal_fd = block_stop_signals();
        kvmini::Machine machine(cli.config, start_ns);
        const int status = machine.run(signal_fd);
        if (status != 0) std::cerr << "kvmini: " << machine.stop_reason() << "\n";
        return status;
    } catch (const std::exception& e) {
        std::cerr << "kvmini: error: " << e.what() << "\n";
        return 1;
    }
}
