// Little-endian loads and stores: how every guest-visible multi-byte value is
// packed into bytes (port and MMIO accesses on the bus, PCI configuration
// space, virtio rings and requests, boot images and tables, the LAPIC page).
// x86 and the PCI and virtio specs are little-endian; these say so in the code
// and do not depend on the host's byte order. Here, beside the bus
// (devices/bus.h hands every access over as a span of bytes), because devices,
// the irqchip models and the loaders all pack such bytes; it depends on
// nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace kvmini::le {

// The value of the first min(bytes.size(), 8) bytes; absent high bytes are 0.
constexpr uint64_t load(std::span<const uint8_t> bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes.size() && i < 8; ++i) v |= uint64_t{bytes[i]} << (8 * i);
    return v;
}

// The low bytes.size() bytes of `value`; bytes past the 8th get 0.
constexpr void store(std::span<uint8_t> bytes, uint64_t value)
{
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = i < 8 ? static_cast<uint8_t>(value >> (8 * i)) : 0;
}

// store() into bytes [offset, offset + n) of a register image.
constexpr void store_at(std::span<uint8_t> image, size_t offset, size_t n, uint64_t value)
{
    store(image.subspan(offset, n), value);
}

constexpr uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(load({p, 2})); }
constexpr uint32_t load32(const uint8_t* p) { return static_cast<uint32_t>(load({p, 4})); }
constexpr uint64_t load64(const uint8_t* p) { return load({p, 8}); }
constexpr void store16(uint8_t* p, uint16_t v) { store({p, 2}, v); }
constexpr void store32(uint8_t* p, uint32_t v) { store({p, 4}, v); }
constexpr void store64(uint8_t* p, uint64_t v) { store({p, 8}, v); }

// `field` with its bytes [at, at + bytes.size()) replaced by `bytes` (a
// narrower write into a wider register); bytes past the 8th are dropped.
constexpr uint64_t merge(uint64_t field, uint64_t at, std::span<const uint8_t> bytes)
{
    for (size_t i = 0; i < bytes.size() && at + i < 8; ++i) {
        const unsigned shift = static_cast<unsigned>(8 * (at + i));
        field = (field & ~(uint64_t{0xff} << shift)) | (uint64_t{bytes[i]} << shift);
    }
    return field;
}

}  // namespace kvmini::le
