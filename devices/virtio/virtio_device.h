// What a virtio device type (block, ...) implements; the transport
// (VirtioPciTransport) does everything else: feature negotiation, status,
// queues, notifications and interrupts, and the I/O thread that calls
// process() for each available chain.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "devices/virtio/virtqueue.h"

namespace kvmini {

class VirtioDevice {
public:
    virtual ~VirtioDevice() = default;

    virtual std::string name() const = 0;
    // Virtio 1.2 section 5 "Device Types": 2 = block.
    virtual uint16_t device_type() const = 0;
    // Device-type feature bits offered; the transport adds VERSION_1,
    // INDIRECT_DESC and EVENT_IDX, which it implements itself.
    virtual uint64_t features() const = 0;
    virtual unsigned num_queues() const = 0;
    virtual uint16_t queue_max_size(unsigned queue) const = 0;

    // Device configuration space (little-endian, as x86 guests also expect
    // through the legacy interface). Accesses are within config_size().
    virtual uint32_t config_size() const = 0;
    virtual void read_config(uint32_t offset, std::span<uint8_t> data) const = 0;
    virtual void write_config(uint32_t /*offset*/, std::span<const uint8_t> /*data*/) {}

    // DRIVER_OK with the negotiated features; a reset (status 0).
    virtual void activate(uint64_t /*features*/) {}
    virtual void reset() {}

    // Serves one request. Returns the number of bytes written into the
    // chain's device-writable buffers (the used length). Called on the I/O
    // thread only.
    virtual uint32_t process(unsigned queue, const VirtqChain& chain) = 0;
};

}  // namespace kvmini
