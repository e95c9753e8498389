// The interrupt-line part of QEMU's pc-testdev: a byte written to port
// 0x2000 + n drives ISA/IOAPIC interrupt line n to (byte != 0), so a test
// kernel can raise and lower any line (edge or level) at will. In kvmini line
// n is GSI n of the routing layer (irqchip/gsi_layout.h, wired by the machine): ISA IRQ n on the
// 8259A pair for n < 16 (n != 2), and IOAPIC pin n (GSI 0 on pin 2).
//
// kvmini decodes the whole 256-port window 0x2000..0x20ff; writes to lines
// 24 and up (no such GSI) are dropped and counted. Wider writes set
// consecutive lines, one per byte, as an ISA bus splits them. Reads (QEMU's
// device has none) return each line's level as last written, 0 or 1, and 0
// beyond line 23.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>

#include "devices/bus.h"
#include "devices/irq_line.h"

namespace kvmini {

namespace pc_testdev {
inline constexpr uint64_t kIrqPortBase = 0x2000;  // QEMU hw/misc/pc-testdev.c "pc-testdev-irq"
inline constexpr uint64_t kIrqPortCount = 0x100;
inline constexpr uint32_t kLines = kGsiCount;  // 24
}  // namespace pc_testdev

class PcTestdevIrq : public BusDevice {
public:
    // Takes one IrqLine of `router` for each line 0..23.
    explicit PcTestdevIrq(IrqSink& router);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    bool level(uint32_t line) const;
    uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }
    uint64_t ignored_writes() const { return ignored_writes_.load(std::memory_order_relaxed); }

private:
    mutable std::mutex mutex_;  // keeps each line's level changes in write order
    std::array<IrqLine, pc_testdev::kLines> lines_;
    std::array<bool, pc_testdev::kLines> levels_{};
    std::atomic<uint64_t> writes_{0};
    std::atomic<uint64_t> ignored_writes_{0};
};

}  // namespace kvmini
