#include "vmm/console_watch.h"

#include <utility>

namespace kvmini {

InitDeathWatch::InitDeathWatch(std::function<void()> on_init_died) : on_init_died_(std::move(on_init_died)) {}

void InitDeathWatch::feed(std::span<const uint8_t> bytes)
{
    if (fired_) return;
    for (uint8_t b : bytes) {
        if (b == '\n') {
            end_line();
            if (fired_) return;
        } else if (b != '\r' && line_.size() < kMaxLine) {
            line_.push_back(static_cast<char>(b));
        }
    }
}

void InitDeathWatch::end_line()
{
    const std::string line = std::move(line_);
    line_.clear();
    if (seen_run_ && ++lines_since_run_ > kLinesAfterRun) seen_run_ = false;
    const size_t run = line.find(kRunInitPrefix);
    if (run != std::string::npos && line.find(kRunInitSuffix, run) != std::string::npos) {
        seen_run_ = true;
        lines_since_run_ = 0;
        return;
    }
    if (seen_run_ && line.find(kInitKilled) != std::string::npos) {
        fired_ = true;
        if (on_init_died_) on_init_died_();
    }
}

std::string InitDeathWatch::message()
{
    return "kvmini: the guest's init died right after it started: this host's KVM is software-only (no VMX/SVM) "
           "and cannot run guest userspace; to see the whole system, run ./scripts/run-reference.sh --nested";
}

}  // namespace kvmini
