// How interrupt lines are numbered and wired on kvmini's PC, in every irqchip
// mode. A GSI is an IOAPIC input pin number (0..23). ISA IRQ n is GSI n, except
// that ISA IRQ 0 (the PIT) is wired to IOAPIC pin 2, as on PC chipsets and in
// the MP table's interrupt entries. ISA IRQs 0..15 also reach the 8259A pair
// (IRQ 2 is the cascade). PCI INTx lines are level, active-low, on GSIs 16..23.
#pragma once

#include <cstdint>
#include <optional>

#include "devices/irq_line.h"

namespace kvmini::gsi {

inline constexpr uint32_t kIoapicPins = kGsiCount;  // 82093AA: 24 redirection entries
inline constexpr uint32_t kIsaIrqs = 16;
inline constexpr uint32_t kPicCascadeIrq = 2;
inline constexpr uint32_t kFirstPciGsi = 16;
inline constexpr uint32_t kPciGsis = 8;       // 16..23

inline constexpr uint32_t kPitIrq = 0;
inline constexpr uint32_t kCom1Irq = 4;
inline constexpr uint32_t kCom2Irq = 3;

// The IOAPIC pin a GSI drives (GSI 0 -> pin 2; GSI 2 has no pin of its own).
inline std::optional<uint32_t> ioapic_pin(uint32_t gsi)
{
    if (gsi == 0) return 2;
    if (gsi == kPicCascadeIrq || gsi >= kIoapicPins) return std::nullopt;
    return gsi;
}

// The 8259A input (0..15, master 0..7, slave 8..15) a GSI drives, if any.
inline std::optional<uint32_t> pic_pin(uint32_t gsi)
{
    if (gsi >= kIsaIrqs || gsi == kPicCascadeIrq) return std::nullopt;
    return gsi;
}

// PCI INTx: device slot and pin (0 = INTA) to GSI, the usual swizzle.
inline uint32_t pci_intx_gsi(uint32_t slot, uint32_t pin) { return kFirstPciGsi + (slot + pin) % kPciGsis; }

}  // namespace kvmini::gsi
