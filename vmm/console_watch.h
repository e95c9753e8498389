// Watches the guest's serial output for a Linux init that dies right after
// the kernel started it, the way every Linux guest ends on a software KVM
// (kvm_pvm: no VMX/SVM): its first system call faults, and the kernel panics
// with "Attempted to kill init!" (../shared/HOST-KVM.md). A newcomer reads that
// as kvmini being broken; the machine (vmm/machine.cpp) uses this watch on
// such hosts to say in one line why, and what to run instead.
//
// Pure: bytes in, one callback out, no I/O. Not thread-safe; the UART calls
// its output sink under its transmit lock, one caller at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

namespace kvmini {

class InitDeathWatch {
public:
    // The kernel's line when it starts init ("Run /init as init process",
    // "Run /sbin/init as init process"), and its panic when init exits.
    static constexpr const char* kRunInitPrefix = "Run /";
    static constexpr const char* kRunInitSuffix = " as init process";
    static constexpr const char* kInitKilled = "Attempted to kill init";
    // How many console lines after "Run ... as init process" still count as
    // "right after": a dying init prints a segfault line, a register dump
    // and a call trace first (about 30 lines on Linux 6.1).
    static constexpr size_t kLinesAfterRun = 100;
    // Longer lines are cut (the markers are near the start of their line).
    static constexpr size_t kMaxLine = 256;

    // `on_init_died` runs once, when the marker line comes within
    // kLinesAfterRun lines of the Run line.
    explicit InitDeathWatch(std::function<void()> on_init_died);

    void feed(std::span<const uint8_t> bytes);
    bool fired() const { return fired_; }

    // The one line kvmini prints then.
    static std::string message();

private:
    void end_line();

    std::function<void()> on_init_died_;
    std::string line_;
    bool seen_run_ = false;
    size_t lines_since_run_ = 0;
    bool fired_ = false;
};

}  // namespace kvmini
