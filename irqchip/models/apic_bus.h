// The APIC bus's vocabulary, shared by the chips that speak on it (the local
// APIC, the I/O APIC) and by the MSI format: delivery modes, destination
// shorthands, one message. Intel SDM vol. 3A 11.6.1 (ICR), 11.11.2 (MSI data
// register); the 82093AA datasheet's IOREDTBL delivery mode (3.2.4) is the
// same encoding.
#pragma once

#include <cstdint>

#include "devices/irq_line.h"

namespace kvmini {

// Interrupt-command / LVT / MSI delivery modes (11.6.1, bits 10:8).
enum class ApicDeliveryMode : uint8_t {
    kFixed = 0,
    kLowestPriority = 1,
    kSmi = 2,
    kNmi = 4,
    kInit = 5,
    kStartup = 6,
    kExtInt = 7,
};

// The delivery-mode field, bits 10:8, in the ICR, every LVT entry and the
// MSI data register alike.
inline constexpr unsigned kApicDeliveryModeShift = 8;
inline constexpr uint32_t kApicDeliveryModeMask = 0x7u << kApicDeliveryModeShift;
constexpr uint32_t delivery_mode_bits(ApicDeliveryMode m) { return uint32_t{static_cast<uint8_t>(m)} << kApicDeliveryModeShift; }

// ICR destination shorthand (11.6.1, bits 19:18).
enum class ApicShorthand : uint8_t { kNone = 0, kSelf = 1, kAllIncludingSelf = 2, kAllExcludingSelf = 3 };

// One interrupt message on the (virtual) APIC bus: from an ICR, the IOAPIC
// or an MSI.
struct ApicMessage {
    uint8_t vector = 0;
    ApicDeliveryMode mode = ApicDeliveryMode::kFixed;
    uint32_t destination = 0;  // xAPIC: 8 bits; x2APIC: 32 bits
    bool logical = false;      // destination mode
    bool level = false;        // trigger mode: level (true) or edge
    bool assert = true;        // level (bit 14): false only for INIT de-assert
    ApicShorthand shorthand = ApicShorthand::kNone;
    uint32_t source_id = 0;    // the sender's APIC ID (for the shorthands)
    bool operator==(const ApicMessage&) const = default;
};

// The MSI format (11.11.1 address, 11.11.2 data): address 0xfee00000 |
// destination << 12 | logical << 2; data vector | delivery mode << 8 |
// assert << 14 | level << 15. In both directions, in one place.
namespace msi {
inline constexpr uint64_t kAddressBase = 0xfee0'0000;
inline constexpr unsigned kAddressDestShift = 12;     // 19:12 destination ID
inline constexpr unsigned kAddressDestModeShift = 2;  // 2: destination mode (1 = logical)
inline constexpr unsigned kDataDeliveryModeShift = kApicDeliveryModeShift;
inline constexpr unsigned kDataAssertShift = 14;      // level: 1 = assert
inline constexpr unsigned kDataTriggerShift = 15;     // trigger mode: 1 = level
}  // namespace msi

inline MsiMessage msi_from_apic_message(const ApicMessage& m)
{
    MsiMessage out;
    out.address = msi::kAddressBase | (uint64_t{m.destination & 0xff} << msi::kAddressDestShift) |
                  (uint64_t{m.logical} << msi::kAddressDestModeShift);
    out.data = uint32_t{m.vector} | (uint32_t{static_cast<uint8_t>(m.mode)} << msi::kDataDeliveryModeShift) |
               (uint32_t{m.assert} << msi::kDataAssertShift) | (uint32_t{m.level} << msi::kDataTriggerShift);
    return out;
}

inline ApicMessage apic_message_from_msi(uint64_t address, uint32_t data)
{
    ApicMessage m;
    m.destination = static_cast<uint32_t>((address >> msi::kAddressDestShift) & 0xff);
    m.logical = (address >> msi::kAddressDestModeShift) & 1;
    m.vector = static_cast<uint8_t>(data & 0xff);
    m.mode = static_cast<ApicDeliveryMode>((data >> msi::kDataDeliveryModeShift) & 7);
    m.level = (data >> msi::kDataTriggerShift) & 1;
    m.assert = !m.level || ((data >> msi::kDataAssertShift) & 1);
    return m;
}

}  // namespace kvmini
