// Guest RAM: one anonymous host mapping, presented to the guest as up to two
// regions (below the MMIO hole, and from 4 GiB on). Every access by a loader
// or a device goes through the bounds-checked accessors here: a guest address
// outside RAM yields nullptr / false / std::nullopt, never a wild pointer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

namespace kvmini {

struct MemoryRegion {
    uint64_t guest_addr;  // guest-physical start
    uint64_t size;        // bytes
    uint8_t* host;        // host address of guest_addr
};

// One e820 entry (Linux boot protocol, "e820 memory map" / ACPI address range types).
struct E820Entry {
    enum Type : uint32_t { kRam = 1, kReserved = 2 };
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

class GuestMemory {
public:
    // Maps `bytes` of RAM (MAP_NORESERVE: untouched pages cost nothing).
    // Throws Error if bytes is 0, not 4 KiB aligned, or cannot be mapped.
    explicit GuestMemory(uint64_t bytes);
    ~GuestMemory();
    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;

    uint64_t size() const { return size_; }
    const std::vector<MemoryRegion>& regions() const { return regions_; }

    // The guest's memory map: RAM regions minus the PC's reserved low areas
    // (EBDA, VGA/BIOS hole 0x9fc00..0x100000), which are reported reserved.
    std::vector<E820Entry> e820() const;

    // Host pointer to [gpa, gpa+len) if the whole range is RAM within one
    // region; nullptr otherwise (including len == 0 at an invalid address and
    // any arithmetic overflow).
    uint8_t* host_ptr(uint64_t gpa, uint64_t len) const;
    std::span<uint8_t> span(uint64_t gpa, uint64_t len) const
    {
        uint8_t* p = host_ptr(gpa, len);
        return p ? std::span<uint8_t>(p, len) : std::span<uint8_t>();
    }
    bool contains(uint64_t gpa, uint64_t len) const { return host_ptr(gpa, len) != nullptr; }

    // Copies; false (and nothing copied) if any byte is outside RAM.
    bool read(uint64_t gpa, void* dst, uint64_t len) const;
    bool write(uint64_t gpa, const void* src, uint64_t len);
    bool fill(uint64_t gpa, uint8_t value, uint64_t len);

    template <typename T>
    std::optional<T> read_obj(uint64_t gpa) const
    {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        if (!read(gpa, &value, sizeof(T))) return std::nullopt;
        return value;
    }
    template <typename T>
    bool write_obj(uint64_t gpa, const T& value)
    {
        static_assert(std::is_trivially_copyable_v<T>);
        return write(gpa, &value, sizeof(T));
    }

private:
    uint8_t* base_ = nullptr;
    uint64_t size_ = 0;
    std::vector<MemoryRegion> regions_;
};

}  // namespace kvmini
