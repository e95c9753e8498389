#include "vmm/guest_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <string>

#include "vmm/error.h"
#include "vmm/memory_layout.h"

namespace kvmini {

GuestMemory::GuestMemory(uint64_t bytes) : size_(bytes)
{
    if (bytes == 0 || bytes % 4096 != 0)
        throw Error("guest RAM size must be a non-zero multiple of 4 KiB, got " + std::to_string(bytes));
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw_errno("mmap of " + std::to_string(bytes >> 20) + " MiB guest RAM");
    base_ = static_cast<uint8_t*>(p);
    ::madvise(base_, bytes, MADV_MERGEABLE);

    const uint64_t low = std::min(bytes, layout::kMmioHoleStart);
    regions_.push_back({0, low, base_});
    if (bytes > low) regions_.push_back({layout::kMmioHoleEnd, bytes - low, base_ + low});
}

GuestMemory::~GuestMemory()
{
    if (base_) ::munmap(base_, size_);
}

std::vector<E820Entry> GuestMemory::e820() const
{
    std::vector<E820Entry> map;
    const MemoryRegion& low = regions_.front();
    // Base memory up to the EBDA, then the reserved EBDA + VGA/BIOS area, then
    // extended memory from 1 MiB (only what RAM there is).
    map.push_back({0, std::min(low.size, layout::kEbdaStart), E820Entry::kRam});
    if (low.size > layout::kEbdaStart)
        map.push_back({layout::kEbdaStart, layout::kHighMemStart - layout::kEbdaStart, E820Entry::kReserved});
    if (low.size > layout::kHighMemStart)
        map.push_back({layout::kHighMemStart, low.size - layout::kHighMemStart, E820Entry::kRam});
    for (size_t i = 1; i < regions_.size(); ++i)
        map.push_back({regions_[i].guest_addr, regions_[i].size, E820Entry::kRam});
    return map;
}

uint8_t* GuestMemory::host_ptr(uint64_t gpa, uint64_t len) const
{
    for (const MemoryRegion& r : regions_) {
        if (gpa < r.guest_addr) continue;
        const uint64_t off = gpa - r.guest_addr;
        if (off > r.size || len > r.size - off) continue;
        if (off == r.size && len == 0) continue;  // one-past-the-end is not an address in RAM
        return r.host + off;
    }
    return nullptr;
}

bool GuestMemory::read(uint64_t gpa, void* dst, uint64_t len) const
{
    const uint8_t* p = host_ptr(gpa, len);
    if (!p) return false;
    std::memcpy(dst, p, len);
    return true;
}

bool GuestMemory::write(uint64_t gpa, const void* src, uint64_t len)
{
    uint8_t* p = host_ptr(gpa, len);
    if (!p) return false;
    std::memcpy(p, src, len);
    return true;
}

bool GuestMemory::fill(uint64_t gpa, uint8_t value, uint64_t len)
{
    uint8_t* p = host_ptr(gpa, len);
    if (!p) return false;
    std::memset(p, value, len);
    return true;
}

}  // namespace kvmini
