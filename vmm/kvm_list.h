// KVM's variable-length ioctl arguments (kvm_cpuid2, kvm_msrs,
// kvm_irq_routing) with the layout the kernel expects.
//
// Why not the structs of <linux/kvm.h>: the 6.1 UAPI header declares their
// tails with __DECLARE_FLEX_ARRAY, which C++ turns into a member struct of its
// own size. In C++ sizeof and offsetof(entries) then differ from C (16 or 12
// bytes instead of 8), and so do the ioctl numbers built from sizeof: the
// kernel answers ENOTTY (KVM_SET_GSI_ROUTING) or reads the entries from the
// wrong offset. The C layout is: __u32 count; __u32 flags/padding; entries[]
// at offset 8. The ioctl numbers below are the C ones (size field 8).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace kvmini {

namespace kvm_ioctl {
inline constexpr unsigned long kListHeaderBytes = 8;
inline constexpr unsigned long kGetSupportedCpuid = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x05, kListHeaderBytes);
inline constexpr unsigned long kSetGsiRouting = _IOC(_IOC_WRITE, KVMIO, 0x6a, kListHeaderBytes);
inline constexpr unsigned long kGetMsrs = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x88, kListHeaderBytes);
inline constexpr unsigned long kSetMsrs = _IOC(_IOC_WRITE, KVMIO, 0x89, kListHeaderBytes);
inline constexpr unsigned long kSetCpuid2 = _IOC(_IOC_WRITE, KVMIO, 0x90, kListHeaderBytes);
}  // namespace kvm_ioctl

// A count, a 32-bit flags/padding word, then `Entry`s, 8-byte aligned.
template <typename Entry>
class KvmList {
public:
    explicit KvmList(size_t capacity)
        : storage_((kvm_ioctl::kListHeaderBytes + capacity * sizeof(Entry) + 7) / 8, 0), capacity_(capacity)
    {
        set_count(static_cast<uint32_t>(capacity));
    }
    explicit KvmList(std::span<const Entry> entries, uint32_t flags = 0) : KvmList(entries.size())
    {
        std::memcpy(bytes() + kvm_ioctl::kListHeaderBytes, entries.data(), entries.size_bytes());
        std::memcpy(bytes() + 4, &flags, 4);
    }

    void* data() { return storage_.data(); }
    uint32_t count() const
    {
        uint32_t n;
        std::memcpy(&n, storage_.data(), 4);
        return n;
    }
    void set_count(uint32_t n) { std::memcpy(storage_.data(), &n, 4); }
    size_t capacity() const { return capacity_; }
    std::vector<Entry> entries() const
    {
        std::vector<Entry> out(std::min<size_t>(count(), capacity_));
        std::memcpy(out.data(), reinterpret_cast<const uint8_t*>(storage_.data()) + kvm_ioctl::kListHeaderBytes,
                    out.size() * sizeof(Entry));
        return out;
    }

private:
    uint8_t* bytes() { return reinterpret_cast<uint8_t*>(storage_.data()); }
    std::vector<uint64_t> storage_;
    size_t capacity_;
};

}  // namespace kvmini
