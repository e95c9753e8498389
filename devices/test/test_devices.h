// QEMU-compatible test devices, enabled by `kvmini run --test-devices`, so
// the freestanding x86 test kernels of the KVM community run unchanged:
//  - isa-debug-exit at port 0xf4: a write of v ends kvmini with status (v << 1) | 1;
//  - pc-testdev's interrupt-line ports 0x2000..0x20ff: a byte written to
//    0x2000 + n sets the level of ISA/IOAPIC line n through the routing layer;
//  - fw_cfg at 0x510 (selector) / 0x511 (data): signature, RAM size, CPU count.
// The devices themselves: debug_exit.h, pc_testdev.h, fw_cfg.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "devices/bus.h"
#include "devices/irq_line.h"

namespace kvmini {

class DebugExit;
class PcTestdevIrq;
class FwCfg;

struct TestDeviceConfig {
    uint64_t ram_bytes = 0;
    unsigned cpus = 1;
    std::function<void(int exit_status)> exit;  // isa-debug-exit
};

// Creates the test devices and registers them on the port bus; owns them.
// The bus must outlive this object (the destructor releases the ports).
class TestDevices {
public:
    TestDevices(Bus& pio, IrqSink& router, const TestDeviceConfig& config);
    ~TestDevices();
    TestDevices(const TestDevices&) = delete;
    TestDevices& operator=(const TestDevices&) = delete;

    DebugExit& debug_exit() const { return *debug_exit_; }
    PcTestdevIrq& irq_lines() const { return *irq_lines_; }
    FwCfg& fw_cfg() const { return *fw_cfg_; }

private:
    Bus& pio_;
    std::vector<uint64_t> bases_;  // the ranges registered, released in the destructor
    std::vector<std::unique_ptr<BusDevice>> devices_;
    DebugExit* debug_exit_ = nullptr;
    PcTestdevIrq* irq_lines_ = nullptr;
    FwCfg* fw_cfg_ = nullptr;
};

}  // namespace kvmini
