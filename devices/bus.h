// The I/O bus: one class, used twice by a machine (port I/O and MMIO).
// Devices register address ranges; a vCPU exit becomes read()/write() here.
// An access nobody claims reads as all-ones, is dropped on write, and is
// counted, never fatal (as on a PC with nothing decoding the address).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>

namespace kvmini {

// Something that answers bus accesses. `offset` is relative to the base of
// the range it was registered for; `data` is 1, 2, 4 or 8 bytes, little-endian.
// Calls may come from several vCPU threads at once: a device guards its own
// state.
class BusDevice {
public:
    virtual ~BusDevice() = default;
    virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class Bus {
public:
    explicit Bus(std::string name) : name_(std::move(name)) {}

    // Claims [base, base+len) for `device` (which must outlive the bus or be
    // removed first). Throws Error naming both devices if it overlaps a range
    // already claimed, or if len is 0 or the range wraps. `after_write`, if
    // given, runs after each write the device handled (an irqchip re-arms a
    // timer or re-reads routes when the guest reprogrammed a model).
    void add(uint64_t base, uint64_t len, BusDevice& device, std::string device_name,
             std::function<void()> after_write = {});
    // Releases the range starting exactly at `base` (PCI BAR moves). False if none.
    bool remove(uint64_t base);

    // True if a device claimed the access. Unclaimed: reads fill 0xff.
    bool read(uint64_t addr, std::span<uint8_t> data);
    bool write(uint64_t addr, std::span<const uint8_t> data);

    uint64_t unclaimed_reads() const { return unclaimed_reads_.load(std::memory_order_relaxed); }
    uint64_t unclaimed_writes() const { return unclaimed_writes_.load(std::memory_order_relaxed); }
    const std::string& name() const { return name_; }

private:
    struct Range {
        uint64_t len;
        BusDevice* device;
        std::string name;
        std::shared_ptr<const std::function<void()>> after_write;  // null: none
    };
    // Finds the range that holds the whole access; nullptr if none.
    const Range* find(uint64_t addr, uint64_t len, uint64_t& offset) const;

    std::string name_;
    mutable std::shared_mutex mutex_;
    std::map<uint64_t, Range> ranges_;  // keyed by base
    std::atomic<uint64_t> unclaimed_reads_{0};
    std::atomic<uint64_t> unclaimed_writes_{0};
};

}  // namespace kvmini
