#include "irqchip/models/ioapic.h"

#include <utility>

#include "devices/le.h"
#include "vmm/memory_layout.h"

namespace kvmini {

namespace {

// Memory-mapped registers, 82093AA datasheet 3.1 (IOREGSEL, IOWIN), plus the
// EOI register of version-0x20 I/O APICs (ICH datasheets, "EOI Register":
// bits 7:0 the vector).
inline constexpr uint64_t kIoregsel = 0x00;
inline constexpr uint64_t kIowin = 0x10;
inline constexpr uint64_t kEoiRegister = 0x40;
inline constexpr uint32_t kIoregselMask = 0xff;  // bits 31:8 reserved

// Indirect registers, 3.2.
inline constexpr uint8_t kRegId = 0x00;       // 3.2.1 IOAPICID
inline constexpr uint8_t kRegVersion = 0x01;  // 3.2.2 IOAPICVER
inline constexpr uint8_t kRegArb = 0x02;      // 3.2.3 IOAPICARB
inline constexpr uint8_t kRegRedirBase = 0x10;// 3.2.4 IOREDTBL0 low, +1 high, 2 per pin
inline constexpr uint32_t kIdShift = 24;      // ID / arbitration ID in bits 27:24
inline constexpr uint32_t kIdMask = 0x0f;
// IOAPICVER: bits 23:16 maximum redirection entry (23), bits 7:0 version.
inline constexpr uint32_t kMaxRedirShift = 16;
inline constexpr uint8_t kFirstVersionWithEoiRegister = 0x20;

// IOREDTBL bits, 3.2.4.
namespace rte {
inline constexpr uint64_t kVector = 0xff;             // 7:0
inline constexpr unsigned kDeliveryModeShift = 8;     // 10:8
inline constexpr uint64_t kDeliveryMode = 0x7ull << kDeliveryModeShift;
inline constexpr uint64_t kDestModeLogical = 1ull << 11;
inline constexpr uint64_t kDeliveryStatus = 1ull << 12;  // RO
inline constexpr uint64_t kPolarityLow = 1ull << 13;
inline constexpr uint64_t kRemoteIrr = 1ull << 14;       // RO
inline constexpr uint64_t kTriggerLevel = 1ull << 15;
inline constexpr uint64_t kMask = 1ull << 16;
inline constexpr unsigned kDestShift = 56;               // 63:56
inline constexpr uint64_t kDest = 0xffull << kDestShift;
// What software can write; the rest is read-only (12, 14) or reserved (55:17).
inline constexpr uint64_t kWritable =
    kVector | kDeliveryMode | kDestModeLogical | kPolarityLow | kTriggerLevel | kMask | kDest;
inline constexpr uint64_t kReadOnly = kDeliveryStatus | kRemoteIrr;
inline constexpr uint64_t kResetValue = kMask;  // "xxx1 xxxx xxxx xxxxh"
}  // namespace rte

// Delivery modes 011 and 110 are reserved (3.2.4, bits 10:8).
inline constexpr uint8_t kReservedMode3 = 3;
inline constexpr uint8_t kReservedMode6 = 6;
// Vectors 0x00-0x0f are illegal at a local APIC (Intel SDM vol. 3A 11.5.3);
// the 82093AA's vector field is documented as 10h-FEh.
inline constexpr uint8_t kFirstLegalVector = 0x10;


bool is_level_capable(uint8_t mode)
{
    return mode == static_cast<uint8_t>(IoapicDeliveryMode::kFixed) ||
           mode == static_cast<uint8_t>(IoapicDeliveryMode::kLowestPriority);
}

}  // namespace

// The message an entry sends when it fires (mask and input state aside).
static IoapicDelivery message_of(uint64_t entry, unsigned pin)
{
    const uint8_t mode = static_cast<uint8_t>((entry & rte::kDeliveryMode) >> rte::kDeliveryModeShift);
    IoapicDelivery d;
    d.vector = static_cast<uint8_t>(entry & rte::kVector);
    d.delivery_mode = static_cast<IoapicDeliveryMode>(mode);
    d.destination = static_cast<uint8_t>((entry & rte::kDest) >> rte::kDestShift);
    d.logical = entry & rte::kDestModeLogical;
    d.level = (entry & rte::kTriggerLevel) && is_level_capable(mode);
    d.pin = static_cast<uint8_t>(pin);
    return d;
}

ApicMessage to_apic_message(const IoapicDelivery& d)
{
    ApicMessage m;
    m.vector = d.vector;
    m.mode = d.delivery_mode;
    m.destination = d.destination;
    m.logical = d.logical;
    m.level = d.level;
    return m;
}

MsiMessage to_msi(const IoapicDelivery& d) { return msi_from_apic_message(to_apic_message(d)); }

Ioapic::Ioapic(DeliverCallback deliver, IoapicConfig config, EoiCallback on_eoi)
    : deliver_(std::move(deliver)), on_eoi_(std::move(on_eoi)), config_(config)
{
    for (unsigned i = 0; i < kPins; ++i) pins_[i].electrical = (config_.active_low_pins >> i) & 1;
    reset_locked();
}

void Ioapic::reset()
{
    std::unique_lock lock(mutex_);
    reset_locked();
    deliver(lock);
}

void Ioapic::reset_locked()
{
    ioregsel_ = 0;
    id_ = config_.id & kIdMask;
    for (Pin& p : pins_) {
        p.rte = rte::kResetValue;
        p.remote_irr = false;
        p.in_flight = false;
        p.held = false;
        p.active = input_active(p);
    }
}

bool Ioapic::input_active(const Pin& p) const { return p.electrical != ((p.rte & rte::kPolarityLow) != 0); }

// Looks at one input after a change and sends what the chip would send.
// `edge_possible`: the change came from the pin (an edge can be recognized);
// false for register writes and EOIs, which only re-check level inputs.
void Ioapic::evaluate(unsigned pin, bool edge_possible)
{
    Pin& p = pins_[pin];
    const bool active = input_active(p);
    const bool rising = active && !p.active;
    p.active = active;
    if (!active) p.held = false;
    const uint8_t mode = static_cast<uint8_t>((p.rte & rte::kDeliveryMode) >> rte::kDeliveryModeShift);
    const bool level = (p.rte & rte::kTriggerLevel) && is_level_capable(mode);
    const bool masked = p.rte & rte::kMask;
    if (level) {
        if (!active || masked || p.remote_irr || p.in_flight) return;
    } else {
        if (!edge_possible || !rising) return;
        if (masked) {
            ++stats_.masked_edges;
            return;
        }
        if (p.in_flight) {
            ++stats_.coalesced_edges;
            return;
        }
    }
    if (mode == kReservedMode3 || mode == kReservedMode6) {
        ++stats_.reserved_modes;
        return;
    }
    const uint8_t vector = static_cast<uint8_t>(p.rte & rte::kVector);
    if (is_level_capable(mode) && vector < kFirstLegalVector) {
        ++stats_.illegal_vectors;
        return;
    }
    const IoapicDelivery d = message_of(p.rte, pin);
    p.in_flight = true;
    if (level) {
        p.remote_irr = true;
        if (p.held) ++stats_.redeliveries;
        p.held = true;
    }
    ++stats_.deliveries;
    outbox_.push(Event{false, d});
}

void Ioapic::deliver(std::unique_lock<std::mutex>& lock)
{
    outbox_.drain(
        lock,
        [this](const Event& e) {
            if (e.is_eoi) {
                if (on_eoi_) on_eoi_(e.delivery.pin, e.delivery.vector);
            } else if (deliver_) {
                deliver_(e.delivery);
            }
        },
        [this](const Event& e, bool accepted) {
            if (e.is_eoi) return;
            // The pin may send again. A level input whose remote IRR was
            // cleared meanwhile is looked at again once the message was taken.
            pins_[e.delivery.pin].in_flight = false;
            if (accepted) evaluate(e.delivery.pin, false);
        });
}

void Ioapic::set_irq(unsigned pin, bool asserted)
{
    if (pin >= kPins) return;
    std::unique_lock lock(mutex_);
    pins_[pin].electrical = asserted != (((config_.active_low_pins >> pin) & 1) != 0);
    evaluate(pin, true);
    deliver(lock);
}

void Ioapic::eoi(uint8_t vector)
{
    std::unique_lock lock(mutex_);
    eoi_locked(vector);
    deliver(lock);
}

void Ioapic::eoi_locked(uint8_t vector)
{
    ++stats_.eois;
    for (unsigned i = 0; i < kPins; ++i) {
        Pin& p = pins_[i];
        if (!p.remote_irr || (p.rte & rte::kVector) != vector) continue;
        p.remote_irr = false;
        ++stats_.remote_irr_cleared;
        if (on_eoi_) {
            IoapicDelivery d;
            d.pin = static_cast<uint8_t>(i);
            d.vector = vector;
            outbox_.push(Event{true, d});
        }
        evaluate(i, false);
    }
}

uint32_t Ioapic::read_register(uint8_t index)
{
    std::unique_lock lock(mutex_);
    return read_register_locked(index);
}

void Ioapic::write_register(uint8_t index, uint32_t value)
{
    std::unique_lock lock(mutex_);
    write_register_locked(index, value);
    deliver(lock);
}

uint32_t Ioapic::read_register_locked(uint8_t index)
{
    switch (index) {
    case kRegId:
    case kRegArb:  // the arbitration ID is loaded from the ID (3.2.3)
        return uint32_t{id_} << kIdShift;
    case kRegVersion:
        return ((kPins - 1) << kMaxRedirShift) | config_.version;
    default:
        break;
    }
    if (index >= kRegRedirBase && index < kRegRedirBase + 2 * kPins) {
        const Pin& p = pins_[(index - kRegRedirBase) / 2];
        const uint64_t v = p.rte | (p.in_flight ? rte::kDeliveryStatus : 0) | (p.remote_irr ? rte::kRemoteIrr : 0);
        return (index & 1) ? static_cast<uint32_t>(v >> 32) : static_cast<uint32_t>(v);
    }
    ++stats_.odd_accesses;
    return 0;
}

void Ioapic::write_register_locked(uint8_t index, uint32_t value)
{
    if (index == kRegId) {
        if (value & ~(kIdMask << kIdShift)) ++stats_.odd_accesses;
        id_ = static_cast<uint8_t>((value >> kIdShift) & kIdMask);
        return;
    }
    if (index < kRegRedirBase || index >= kRegRedirBase + 2 * kPins) {
        ++stats_.odd_accesses;  // read-only (version, arbitration) or unknown
        return;
    }
    const unsigned pin = (index - kRegRedirBase) / 2;
    Pin& p = pins_[pin];
    const uint64_t half_mask = (index & 1) ? 0xffff'ffff'0000'0000ull : 0x0000'0000'ffff'ffffull;
    const unsigned shift = (index & 1) ? 32 : 0;
    const uint64_t written = (uint64_t{value} << shift) & half_mask;
    if (written & ~(rte::kWritable | rte::kReadOnly)) ++stats_.odd_accesses;  // reserved bits
    const uint64_t old = p.rte;
    p.rte = (old & ~half_mask) | (written & rte::kWritable);
    if (!(index & 1)) {
        // Trigger mode edge: remote IRR means nothing any more and is cleared.
        if (!(p.rte & rte::kTriggerLevel)) p.remote_irr = false;
        const uint8_t mode = static_cast<uint8_t>((p.rte & rte::kDeliveryMode) >> rte::kDeliveryModeShift);
        if ((p.rte & rte::kTriggerLevel) && !is_level_capable(mode) && mode != kReservedMode3 &&
            mode != kReservedMode6)
            ++stats_.odd_accesses;  // SMI/NMI/INIT/ExtINT "require edge trigger mode"
    }
    // Unmasking a level input that is asserted delivers it now; polarity and
    // trigger changes create no edge.
    evaluate(pin, false);
}

// IOREGSEL and IOWIN are 32-bit registers (3.1); narrower reads return the
// addressed bytes. IOWIN writes must be 32 bits wide.
void Ioapic::read(uint64_t offset, std::span<uint8_t> data)
{
    std::unique_lock lock(mutex_);
    uint32_t value = 0;
    const uint64_t reg = offset & ~uint64_t{3};
    if ((offset & 3) + data.size() > 4) {
        ++stats_.odd_accesses;
    } else if (reg == kIoregsel) {
        value = ioregsel_;
    } else if (reg == kIowin) {
        value = read_register_locked(static_cast<uint8_t>(ioregsel_));
    } else {
        ++stats_.odd_accesses;  // the EOI register is write-only; the rest is reserved
    }
    le::store(data, uint64_t{value} >> (8 * (offset & 3)));  // 0 past the register's 4th byte
}

void Ioapic::write(uint64_t offset, std::span<const uint8_t> data)
{
    std::unique_lock lock(mutex_);
    const uint32_t value = static_cast<uint32_t>(le::load(data));  // bytes past the 4th are dropped
    if (offset == kIoregsel && data.size() <= 4) {
        if (value & ~kIoregselMask) ++stats_.odd_accesses;
        ioregsel_ = value & kIoregselMask;
    } else if (offset == kIowin && data.size() == 4) {
        write_register_locked(static_cast<uint8_t>(ioregsel_), value);
    } else if (offset == kEoiRegister && data.size() <= 4 && config_.version >= kFirstVersionWithEoiRegister) {
        eoi_locked(static_cast<uint8_t>(value));
    } else {
        ++stats_.odd_accesses;
    }
    deliver(lock);
}

void Ioapic::attach(Bus& mmio, const std::function<void()>& after_write)
{
    mmio.add(layout::kIoapicBase, kMmioSize, *this, "IOAPIC", after_write);
}

uint64_t Ioapic::redirection_entry(unsigned pin) const
{
    std::lock_guard lock(mutex_);
    if (pin >= kPins) return 0;
    const Pin& p = pins_[pin];
    return p.rte | (p.in_flight ? rte::kDeliveryStatus : 0) | (p.remote_irr ? rte::kRemoteIrr : 0);
}

std::optional<IoapicDelivery> Ioapic::programmed_message(unsigned pin) const
{
    std::lock_guard lock(mutex_);
    if (pin >= kPins || (pins_[pin].rte & rte::kMask)) return std::nullopt;
    const IoapicDelivery d = message_of(pins_[pin].rte, pin);
    const uint8_t mode = static_cast<uint8_t>(d.delivery_mode);
    if (mode == kReservedMode3 || mode == kReservedMode6) return std::nullopt;
    if (is_level_capable(mode) && d.vector < kFirstLegalVector) return std::nullopt;
    return d;
}

IoapicStats Ioapic::stats() const
{
    std::lock_guard lock(mutex_);
    return stats_;
}

}  // namespace kvmini
