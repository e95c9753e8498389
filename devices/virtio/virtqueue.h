// The device side of a split virtqueue (virtio 1.2 section 2.7): reads
// descriptor chains the driver made available, returns them through the used
// ring, and decides whether the driver wants an interrupt (EVENT_IDX or the
// NO_INTERRUPT flag). Supports INDIRECT_DESC.
//
// The guest is hostile. Every guest access goes through GuestMemory; the rings
// are checked to lie in RAM when the queue is enabled. A driver that breaks
// the ring's rules (available index running ahead by more than the queue
// size, a head or next index out of range, a chain that loops or is longer
// than allowed, an indirect table with a bad length, nested or combined with
// NEXT, or outside RAM) makes pop() return kBroken, and the queue stays broken
// until reset: the transport then sets DEVICE_NEEDS_RESET. A buffer outside
// guest RAM only fails its own request (chain.buffers_ok is false).
//
// Not thread-safe: the transport serialises set-up and processing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vmm/guest_memory.h"

namespace kvmini {

// One buffer of a chain. `host` is nullptr if the buffer is not in guest RAM.
struct VirtqBuffer {
    uint8_t* host;
    uint32_t len;
    uint64_t gpa;
};

struct VirtqChain {
    uint16_t head = 0;                    // what goes back in the used ring
    std::vector<VirtqBuffer> readable;    // device-readable, in chain order
    std::vector<VirtqBuffer> writable;    // device-writable, in chain order
    // False if a buffer lies outside RAM or a readable buffer follows a
    // writable one: the request must fail (its buffers may still be written
    // where they are in RAM).
    bool buffers_ok = true;
    uint64_t readable_bytes = 0;
    uint64_t writable_bytes = 0;

    void clear()
    {
        readable.clear();
        writable.clear();
        buffers_ok = true;
        readable_bytes = writable_bytes = 0;
    }
};

enum class VirtqPop { kEmpty, kChain, kBroken };

class VirtQueue {
public:
    VirtQueue(GuestMemory& mem, uint16_t max_size);

    // --- Set-up by the driver (through the transport) -------------------------
    uint16_t max_size() const { return max_size_; }
    uint16_t size() const { return size_; }
    uint64_t desc_addr() const { return desc_; }
    uint64_t avail_addr() const { return avail_; }
    uint64_t used_addr() const { return used_; }
    // Ignored while the queue is enabled.
    void set_size(uint16_t size);
    void set_desc_addr(uint64_t gpa);
    void set_avail_addr(uint64_t gpa);
    void set_used_addr(uint64_t gpa);
    // The negotiated features the queue honours (INDIRECT_DESC, EVENT_IDX).
    void set_features(uint64_t features);

    // Starts using the queue. False, and the queue stays disabled with
    // error() saying why, if the size is not a power of two in 1..max_size or
    // a ring is misaligned or not wholly in guest RAM.
    bool enable();
    bool enabled() const { return enabled_; }
    // Back to the reset state: disabled, size max_size, addresses and indexes 0.
    void reset();

    // --- Processing -------------------------------------------------------------
    // The next available chain, or kEmpty, or kBroken (see above).
    VirtqPop pop(VirtqChain& chain);
    // Returns `head` to the driver with `written` bytes written into it.
    void push(uint16_t head, uint32_t written);
    // After push()es: whether the driver asked for an interrupt for them.
    bool needs_interrupt();
    // Before waiting for the next notification: tells the driver (EVENT_IDX
    // avail_event) where to notify from, then returns true if buffers arrived
    // meanwhile (process again instead of waiting).
    bool prepare_wait();

    bool broken() const { return broken_; }
    const std::string& error() const { return error_; }
    uint16_t last_avail_idx() const { return last_avail_; }
    uint16_t used_idx() const { return used_idx_; }
    uint64_t failed_buffers() const { return failed_buffers_; }

private:
    VirtqPop fail(std::string why);
    uint16_t read_avail_idx() const;

    GuestMemory& mem_;
    const uint16_t max_size_;
    uint16_t size_;
    uint64_t desc_ = 0, avail_ = 0, used_ = 0;
    bool indirect_ = false;
    bool event_idx_ = false;
    bool enabled_ = false;
    bool broken_ = false;
    std::string error_;
    uint16_t last_avail_ = 0;
    uint16_t used_idx_ = 0;
    uint16_t signalled_used_ = 0;
    bool signalled_used_valid_ = false;
    bool pushed_ = false;
    uint64_t failed_buffers_ = 0;
};

}  // namespace kvmini
