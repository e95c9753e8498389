#include "devices/bus.h"

#include <cstring>
#include <mutex>

#include <spdlog/fmt/fmt.h>

#include "vmm/error.h"

namespace kvmini {

void Bus::add(uint64_t base, uint64_t len, BusDevice& device, std::string device_name,
              std::function<void()> after_write)
{
    if (len == 0 || base + len < base)
        throw Error(fmt::format("{} bus: bad range {:#x}+{:#x} for {}", name_, base, len, device_name));
    std::unique_lock lock(mutex_);
    auto next = ranges_.lower_bound(base);
    if (next != ranges_.end() && next->first < base + len)
        throw Error(fmt::format("{} bus: {} at {:#x}+{:#x} overlaps {} at {:#x}+{:#x}", name_, device_name, base, len,
                                next->second.name, next->first, next->second.len));
    if (next != ranges_.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second.len > base)
            throw Error(fmt::format("{} bus: {} at {:#x}+{:#x} overlaps {} at {:#x}+{:#x}", name_, device_name, base,
                                    len, prev->second.name, prev->first, prev->second.len));
    }
    auto hook = after_write ? std::make_shared<const std::function<void()>>(std::move(after_write)) : nullptr;
    ranges_.emplace(base, Range{len, &device, std::move(device_name), std::move(hook)});
}

bool Bus::remove(uint64_t base)
{
    std::unique_lock lock(mutex_);
    return ranges_.erase(base) == 1;
}

const Bus::Range* Bus::find(uint64_t addr, uint64_t len, uint64_t& offset) const
{
    auto it = ranges_.upper_bound(addr);
    if (it == ranges_.begin()) return nullptr;
    --it;
    const uint64_t off = addr - it->first;
    if (off >= it->second.len || len > it->second.len - off) return nullptr;
    offset = off;
    return &it->second;
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data)
{
    BusDevice* device = nullptr;
    uint64_t offset = 0;
    {
        std::shared_lock lock(mutex_);
        if (const Range* r = find(addr, data.size(), offset)) device = r->device;
    }
    if (!device) {
        std::memset(data.data(), 0xff, data.size());
        unclaimed_reads_.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    device->read(offset, data);
    return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data)
{
    BusDevice* device = nullptr;
    std::shared_ptr<const std::function<void()>> after_write;
    uint64_t offset = 0;
    {
        std::shared_lock lock(mutex_);
        if (const Range* r = find(addr, data.size(), offset)) {
            device = r->device;
            after_write = r->after_write;
        }
    }
    if (!device) {
        unclaimed_writes_.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    device->write(offset, data);
    if (after_write) (*after_write)();
    return true;
}

}  // namespace kvmini
