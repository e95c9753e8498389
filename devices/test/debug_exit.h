// QEMU's isa-debug-exit, as the KVM community's test kernels use it
// (kvm-unit-tests runs QEMU with `-device isa-debug-exit,iobase=0xf4,iosize=0x4`):
// a write of value v to the port ends the VMM with exit status (v << 1) | 1.
// So a guest can never produce status 0: by convention v = 0 (status 1) means
// "pass" and any other v "fail". QEMU's device has no read side; reads here
// return all-ones, as for an undecoded ISA port.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>

#include "devices/bus.h"

namespace kvmini {

namespace debug_exit {
inline constexpr uint64_t kPort = 0xf4;      // kvm-unit-tests' iobase
inline constexpr uint64_t kPortCount = 4;    // kvm-unit-tests' iosize: 1-, 2- and 4-byte writes at 0xf4
// QEMU hw/misc/debugexit.c: exit((val << 1) | 1). A process exit status holds
// 8 bits, so only the low byte of that survives; it is passed on as such.
constexpr int exit_status(uint64_t value) { return static_cast<int>(((value << 1) | 1) & 0xff); }
}  // namespace debug_exit

class DebugExit : public BusDevice {
public:
    // `exit` gets the status; it is called without any lock of the device
    // held, once per write (a guest may write twice before the VMM stops).
    explicit DebugExit(std::function<void(int exit_status)> exit) : exit_(std::move(exit)) {}

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

private:
    std::function<void(int)> exit_;
    std::atomic<uint64_t> writes_{0};
};

}  // namespace kvmini
