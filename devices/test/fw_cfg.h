// QEMU's firmware configuration device (fw_cfg), the x86 I/O port interface
// only ("traditional" interface, no DMA), with the items a test kernel reads:
// the signature, the interface ID, the RAM size and the CPU counts.
//
// QEMU docs/specs/fw_cfg.rst, "Guest-side Hardware Interface":
//  - selector register: write only, 16-bit, little-endian at I/O port 0x510.
//    Writing it selects an item and sets the data offset to 0. Bit 14 asks
//    for write access, bit 15 selects architecture-specific items;
//  - data register: 8-bit at I/O port 0x511. Each read returns the next byte
//    of the selected item; reads past its end, and reads of an item that does
//    not exist, return 0. Writes are ignored (QEMU 2.4 and later: items are
//    read-only through this interface).
// As QEMU's x86 "fw_cfg_io" does, the two ports decode by access size rather
// than address: a 16-bit write anywhere in 0x510..0x511 is a selector write,
// a byte read or write is a data access. Wider reads return consecutive data
// bytes, one per byte of the access, as an ISA bus splits them.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <vector>

#include "devices/bus.h"

namespace kvmini {

namespace fw_cfg {
inline constexpr uint64_t kSelectorPort = 0x510;
inline constexpr uint64_t kDataPort = 0x511;
inline constexpr uint64_t kPortCount = 2;

// Selector bits (fw_cfg.rst "Selector (Control) Register").
inline constexpr uint16_t kWriteChannel = 0x4000;  // bit 14: write access (ignored: all items read-only)
inline constexpr uint16_t kArchLocal = 0x8000;     // bit 15: architecture-specific item

// Item keys (fw_cfg.rst "Selector Register Key Values"; QEMU's FW_CFG_*).
inline constexpr uint16_t kSignature = 0x0000;  // "QEMU"
inline constexpr uint16_t kId = 0x0001;         // 32-bit LE feature bitmap
inline constexpr uint16_t kRamSize = 0x0003;    // 64-bit LE, bytes
inline constexpr uint16_t kNbCpus = 0x0005;     // 16-bit LE, CPUs present at boot
inline constexpr uint16_t kMaxCpus = 0x000f;    // 16-bit LE, CPUs possible

// fw_cfg.rst "Signature" and "Revision / feature bitmap".
inline constexpr uint8_t kSignatureBytes[4] = {'Q', 'E', 'M', 'U'};
inline constexpr uint32_t kIdTraditional = 1u << 0;  // the port interface
inline constexpr uint32_t kIdDma = 1u << 1;          // not offered by kvmini
}  // namespace fw_cfg

class FwCfg : public BusDevice {
public:
    FwCfg(uint64_t ram_bytes, unsigned cpus);

    // Offsets relative to kSelectorPort (0: 0x510, 1: 0x511).
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    uint16_t selector() const;
    uint64_t ignored_writes() const { return ignored_writes_.load(std::memory_order_relaxed); }
    uint64_t unknown_selects() const { return unknown_selects_.load(std::memory_order_relaxed); }

private:
    uint8_t next_byte();  // with mutex_ held

    std::map<uint16_t, std::vector<uint8_t>> items_;  // constant after construction
    mutable std::mutex mutex_;
    uint16_t selector_ = fw_cfg::kSignature;
    uint32_t offset_ = 0;
    std::atomic<uint64_t> ignored_writes_{0};
    std::atomic<uint64_t> unknown_selects_{0};
};

}  // namespace kvmini
