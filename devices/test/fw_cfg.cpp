#include "devices/test/fw_cfg.h"

#include <iterator>

#include "devices/le.h"

namespace kvmini {

namespace {
template <typename T>
std::vector<uint8_t> little_endian(T value)
{
    std::vector<uint8_t> bytes(sizeof(T));
    le::store(bytes, static_cast<uint64_t>(value));
    return bytes;
}
}  // namespace

FwCfg::FwCfg(uint64_t ram_bytes, unsigned cpus)
{
    using namespace fw_cfg;
    items_[kSignature].assign(std::begin(kSignatureBytes), std::end(kSignatureBytes));
    items_[kId] = little_endian<uint32_t>(kIdTraditional);
    items_[kRamSize] = little_endian<uint64_t>(ram_bytes);
    items_[kNbCpus] = little_endian<uint16_t>(static_cast<uint16_t>(cpus));
    // kvmini has no CPU hotplug: every possible CPU is present at boot.
    items_[kMaxCpus] = little_endian<uint16_t>(static_cast<uint16_t>(cpus));
}

uint8_t FwCfg::next_byte()
{
    // Bit 14 only asks for write access; the item is the same.
    const uint16_t key = selector_ & static_cast<uint16_t>(~fw_cfg::kWriteChannel);
    auto it = items_.find(key);
    if (it == items_.end() || offset_ >= it->second.size()) return 0;
    return it->second[offset_++];
}

void FwCfg::read(uint64_t /*offset*/, std::span<uint8_t> data)
{
    std::lock_guard lock(mutex_);
    for (uint8_t& b : data) b = next_byte();
}

void FwCfg::write(uint64_t /*offset*/, std::span<const uint8_t> data)
{
    if (data.size() != 2) {
        // A byte write is a data write: ignored since QEMU 2.4. Other widths
        // are not accepted by the device.
        ignored_writes_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    const uint16_t value = le::load16(data.data());
    std::lock_guard lock(mutex_);
    selector_ = value;
    offset_ = 0;
    if (!items_.contains(value & static_cast<uint16_t>(~fw_cfg::kWriteChannel)))
        unknown_selects_.fetch_add(1, std::memory_order_relaxed);
}

uint16_t FwCfg::selector() const
{
    std::lock_guard lock(mutex_);
    return selector_;
}

}  // namespace kvmini
