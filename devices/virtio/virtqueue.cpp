#include "devices/virtio/virtqueue.h"

#include <atomic>
#include <bit>

#include <spdlog/fmt/fmt.h>

#include "devices/virtio/virtio_spec.h"

namespace kvmini {

using namespace virtio;

namespace {
// The 16-bit ring fields the driver and the device change while the other
// side reads them (avail idx, flags and used_event; used idx and
// avail_event) are read and written with one 16-bit access each. Through
// GuestMemory::read/write they went through memcpy, which glibc does for 2
// bytes as a 1-byte load of the low byte and then a 2-byte load: a driver's
// update in between tears the value. Seen in the hardware-style lane (2
// vCPUs, 16 O_DIRECT readers): the avail index read as 0x4bfe (low byte of
// 0x4afe, high byte of 0x4b00), "257 ahead" of 0x4afd, and the queue broke;
// a tear that lands within the queue size would make the device take
// entries the driver has not published. enable() checked that the rings are
// in RAM and aligned, so these fields are 2-byte aligned host memory.
uint16_t load_index(const GuestMemory& mem, uint64_t gpa, uint16_t fallback)
{
    const uint8_t* p = mem.host_ptr(gpa, sizeof(uint16_t));
    if (!p) return fallback;
    // Acquire/release (the same instructions as relaxed on x86) rather than
    // relaxed accesses ordered by fences: ThreadSanitizer does not see fences.
    return std::atomic_ref<const uint16_t>(*reinterpret_cast<const uint16_t*>(p)).load(std::memory_order_acquire);
}

void store_index(GuestMemory& mem, uint64_t gpa, uint16_t value)
{
    uint8_t* p = mem.host_ptr(gpa, sizeof(uint16_t));
    if (p) std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).store(value, std::memory_order_release);
}
}  // namespace

VirtQueue::VirtQueue(GuestMemory& mem, uint16_t max_size) : mem_(mem), max_size_(max_size), size_(max_size) {}

void VirtQueue::set_size(uint16_t size)
{
    if (!enabled_) size_ = size;
}
void VirtQueue::set_desc_addr(uint64_t gpa)
{
    if (!enabled_) desc_ = gpa;
}
void VirtQueue::set_avail_addr(uint64_t gpa)
{
    if (!enabled_) avail_ = gpa;
}
void VirtQueue::set_used_addr(uint64_t gpa)
{
    if (!enabled_) used_ = gpa;
}

void VirtQueue::set_features(uint64_t features)
{
    indirect_ = features & feature(kFRingIndirectDesc);
    event_idx_ = features & feature(kFRingEventIdx);
}

bool VirtQueue::enable()
{
    if (enabled_) return true;
    error_.clear();
    if (size_ == 0 || size_ > max_size_ || !std::has_single_bit(size_))
        error_ = fmt::format("queue size {} is not a power of two in 1..{}", size_, max_size_);
    else if (desc_ % kDescAlign || avail_ % kAvailAlign || used_ % kUsedAlign)
        error_ = fmt::format("misaligned rings (desc {:#x}, avail {:#x}, used {:#x})", desc_, avail_, used_);
    else if (!mem_.contains(desc_, uint64_t{size_} * sizeof(VirtqDesc)) || !mem_.contains(avail_, avail_bytes(size_)) ||
             !mem_.contains(used_, used_bytes(size_)))
        error_ = fmt::format("rings outside guest RAM (desc {:#x}, avail {:#x}, used {:#x})", desc_, avail_, used_);
    if (!error_.empty()) return false;
    enabled_ = true;
    broken_ = false;
    last_avail_ = used_idx_ = 0;
    signalled_used_valid_ = false;
    pushed_ = false;
    return true;
}

void VirtQueue::reset()
{
    size_ = max_size_;
    desc_ = avail_ = used_ = 0;
    indirect_ = event_idx_ = false;
    enabled_ = broken_ = false;
    error_.clear();
    last_avail_ = used_idx_ = signalled_used_ = 0;
    signalled_used_valid_ = pushed_ = false;
}

VirtqPop VirtQueue::fail(std::string why)
{
    broken_ = true;
    error_ = std::move(why);
    return VirtqPop::kBroken;
}

uint16_t VirtQueue::read_avail_idx() const
{
    // In RAM: checked by enable().
    const uint16_t idx = load_index(mem_, avail_ + kAvailIdx, last_avail_);
    // The ring entries and descriptors are read after the index (2.7.13: the
    // driver writes them before the index, with a barrier in between).
    std::atomic_thread_fence(std::memory_order_acquire);
    return idx;
}

VirtqPop VirtQueue::pop(VirtqChain& chain)
{
    if (broken_) return VirtqPop::kBroken;
    if (!enabled_) return VirtqPop::kEmpty;
    const uint16_t avail_idx = read_avail_idx();
    const uint16_t pending = static_cast<uint16_t>(avail_idx - last_avail_);
    if (pending == 0) return VirtqPop::kEmpty;
    if (pending > size_)
        return fail(fmt::format("available index {} is {} ahead of {} (queue size {})", avail_idx, pending,
                                last_avail_, size_));
    const uint16_t head =
        mem_.read_obj<uint16_t>(avail_ + kAvailRing + 2ull * (last_avail_ % size_)).value_or(0xffff);
    if (head >= size_) return fail(fmt::format("head index {} out of range (queue size {})", head, size_));
    ++last_avail_;

    chain.clear();
    chain.head = head;
    uint64_t table = desc_;
    uint32_t table_len = size_;
    uint32_t limit = size_;      // descriptors allowed in this table's walk
    uint32_t count = 0;
    bool in_indirect = false;
    uint16_t idx = head;
    for (;;) {
        if (idx >= table_len)
            return fail(fmt::format("descriptor index {} out of range ({} entries)", idx, table_len));
        if (++count > limit) return fail(fmt::format("descriptor chain from head {} loops or exceeds {}", head, limit));
        const auto d = mem_.read_obj<VirtqDesc>(table + 16ull * idx);
        if (!d) return fail(fmt::format("descriptor {} outside guest RAM", idx));

        if (d->flags & kDescFIndirect) {
            // 2.7.5.3.1: only with the feature, one level deep, not with NEXT,
            // a whole number of descriptors, no longer than the queue.
            if (!indirect_) return fail("indirect descriptor without VIRTIO_F_INDIRECT_DESC");
            if (in_indirect) return fail("nested indirect descriptor");
            if (d->flags & kDescFNext) return fail("indirect descriptor with NEXT set");
            if (d->len == 0 || d->len % sizeof(VirtqDesc) || d->len / sizeof(VirtqDesc) > size_)
                return fail(fmt::format("indirect table length {} invalid (queue size {})", d->len, size_));
            if (!mem_.contains(d->addr, d->len))
                return fail(fmt::format("indirect table {:#x}+{:#x} outside guest RAM", d->addr, d->len));
            table = d->addr;
            table_len = d->len / sizeof(VirtqDesc);
            limit = table_len;
            count = 0;
            in_indirect = true;
            idx = 0;
            continue;
        }

        if (d->len) {
            VirtqBuffer buf{mem_.host_ptr(d->addr, d->len), d->len, d->addr};
            if (!buf.host) {
                chain.buffers_ok = false;
                ++failed_buffers_;
            }
            if (d->flags & kDescFWrite) {
                chain.writable.push_back(buf);
                chain.writable_bytes += d->len;
            } else {
                if (!chain.writable.empty()) chain.buffers_ok = false;   // 2.7.4.2: readable before writable
                chain.readable.push_back(buf);
                chain.readable_bytes += d->len;
            }
        }
        if (!(d->flags & kDescFNext)) break;
        idx = d->next;
    }
    return VirtqPop::kChain;
}

void VirtQueue::push(uint16_t head, uint32_t written)
{
    if (!enabled_ || broken_) return;
    const uint64_t elem = used_ + kUsedRing + kUsedElemSize * (used_idx_ % size_);
    const uint32_t entry[2] = {head, written};
    mem_.write(elem, entry, sizeof(entry));
    // The element must be visible before the index that publishes it.
    std::atomic_thread_fence(std::memory_order_release);
    ++used_idx_;
    store_index(mem_, used_ + kUsedIdx, used_idx_);
    pushed_ = true;
}

bool VirtQueue::needs_interrupt()
{
    if (!enabled_ || !pushed_) return false;
    pushed_ = false;
    // The used index write must be visible before reading the driver's
    // suppression state (2.7.7: otherwise an interrupt can be lost).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (event_idx_) {
        const uint16_t used_event = load_index(mem_, avail_ + kAvailRing + 2ull * size_, 0);
        const uint16_t old = signalled_used_;
        const bool valid = signalled_used_valid_;
        signalled_used_ = used_idx_;
        signalled_used_valid_ = true;
        return !valid || need_event(used_event, used_idx_, old);
    }
    const uint16_t flags = load_index(mem_, avail_ + kAvailFlags, 0);
    return !(flags & kAvailFNoInterrupt);
}

bool VirtQueue::prepare_wait()
{
    if (!enabled_ || broken_) return false;
    if (event_idx_) {
        store_index(mem_, used_ + kUsedRing + kUsedElemSize * size_, last_avail_);
        // avail_event must be visible before re-reading the available index.
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }
    return read_avail_idx() != last_avail_;
}

}  // namespace kvmini
