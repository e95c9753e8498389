#include "irqchip/irq_router.h"

#include <string>

#include "vmm/error.h"

namespace kvmini {

IrqLine IrqRouter::line(uint32_t gsi)
{
    if (gsi >= gsi::kIoapicPins) throw Error("no GSI " + std::to_string(gsi) + " (the IOAPIC has 24 pins)");
    std::lock_guard lock(mutex_);
    if (sources_[gsi] >= 64) throw Error("too many interrupt sources share GSI " + std::to_string(gsi));
    return IrqLine(this, gsi, sources_[gsi]++);
}

void IrqRouter::set_level(uint32_t gsi, uint32_t source, bool level)
{
    std::lock_guard lock(mutex_);
    const uint64_t before = asserted_[gsi];
    const uint64_t bit = uint64_t{1} << source;
    asserted_[gsi] = level ? (before | bit) : (before & ~bit);
    const bool was = before != 0, now = asserted_[gsi] != 0;
    if (was != now) chip_.set_gsi_level(gsi, now);
}

void IrqRouter::send_msi(const MsiMessage& msg) { chip_.send_msi(msg); }

bool IrqRouter::gsi_level(uint32_t gsi) const
{
    std::lock_guard lock(mutex_);
    return gsi < gsi::kIoapicPins && asserted_[gsi] != 0;
}

}  // namespace kvmini
