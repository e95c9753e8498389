// The APIC bus's vocabulary, shared by the chips that speak on it (the local
// APIC, the I/O APIC) and by the MSI format: delivery modes, destination
// shorthands, one message. Intel SDM vol. 3A 11.6.1 (ICR), 11.11.2 (MSI data
// register); the 82093AA datasheet's IOREDTBL delivery mode (3.2.4) is the
// same encoding.
#pragma once

#include <cstdint>

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

}  // namespace kvmini
