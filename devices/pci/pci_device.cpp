#include "devices/pci/pci_device.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include <spdlog/spdlog.h>

#include "devices/pci/pci_host_bridge.h"
#include "vmm/error.h"

namespace kvmini {

using namespace pci;

namespace {

bool overlaps(uint32_t offset, unsigned size, uint32_t start, unsigned len)
{
    return offset < start + len && start < offset + size;
}

}  // namespace

PciDevice::PciDevice(const PciIds& ids, std::string name) : name_(std::move(name))
{
    set_cfg16(kVendorId, ids.vendor);
    set_cfg16(kDeviceId, ids.device);
    cfg_[kRevisionId] = ids.revision;
    cfg_[kClassProgIf] = static_cast<uint8_t>(ids.class_code);
    cfg_[kClassProgIf + 1] = static_cast<uint8_t>(ids.class_code >> 8);
    cfg_[kClassProgIf + 2] = static_cast<uint8_t>(ids.class_code >> 16);
    cfg_[kHeaderType] = kHeaderTypeNormal;
    set_cfg16(kSubsystemVendorId, ids.subsystem_vendor);
    set_cfg16(kSubsystemId, ids.subsystem);

    // Writable header fields (everything else is read-only or hardwired).
    wmask_[kCommand] = static_cast<uint8_t>(kCommandWritable);
    wmask_[kCommand + 1] = static_cast<uint8_t>(kCommandWritable >> 8);
    wmask_[kCacheLineSize] = 0xff;
    wmask_[kLatencyTimer] = 0xff;
    wmask_[kInterruptLine] = 0xff;

    for (unsigned i = 0; i < kNumBars; ++i) {
        bars_[i].window.device = this;
        bars_[i].window.index = i;
    }
}

PciDevice::~PciDevice()
{
    detach_from_buses();
    if (host_) host_->forget(this);
}

void PciDevice::detach_from_buses()
{
    std::lock_guard lock(mutex_);
    for (unsigned i = 0; i < kNumBars; ++i) {
        Bar& b = bars_[i];
        if (!b.mapped) continue;
        Bus* bus = b.kind == PciBarKind::kIo ? pio_ : mmio_;
        if (bus) bus->remove(*b.mapped);
        b.mapped.reset();
    }
    pio_ = mmio_ = nullptr;
}

uint32_t PciDevice::cfg32(unsigned off) const { return le::load32(&cfg_[off]); }

void PciDevice::set_cfg16(unsigned off, uint16_t v) { le::store16(&cfg_[off], v); }

void PciDevice::set_cfg32(unsigned off, uint32_t v) { le::store32(&cfg_[off], v); }

// --- Set-up ------------------------------------------------------------------

void PciDevice::declare_bar(unsigned bar, PciBarKind kind, uint64_t size)
{
    const unsigned slots = kind == PciBarKind::kMem64 ? 2 : 1;
    if (bar + slots > kNumBars || bars_[bar].size || bars_[bar].upper_half)
        throw Error(fmt::format("{}: BAR {} is taken or out of range", name_, bar));
    if (!std::has_single_bit(size) || (kind == PciBarKind::kIo ? (size < 4 || size > 256) : size < 16) ||
        (kind == PciBarKind::kMem32 && size > (1ull << 31)))
        throw Error(fmt::format("{}: bad size {:#x} for BAR {}", name_, size, bar));
    if (kind == PciBarKind::kMem64 && (bars_[bar + 1].size || bars_[bar + 1].upper_half))
        throw Error(fmt::format("{}: BAR {} is taken", name_, bar + 1));

    Bar& b = bars_[bar];
    b.kind = kind;
    b.size = size;
    const unsigned off = kBar0 + 4 * bar;
    uint32_t mask;
    switch (kind) {
    case PciBarKind::kIo:
        set_cfg32(off, kBarIoSpace);
        mask = static_cast<uint32_t>(~(size - 1)) & 0xffff & ~kBarIoFlagBits;   // x86 ports are 16 bits
        break;
    case PciBarKind::kMem32:
        set_cfg32(off, 0);
        mask = static_cast<uint32_t>(~(size - 1)) & ~kBarMemFlagBits;
        break;
    case PciBarKind::kMem64:
    default:
        set_cfg32(off, kBarMemType64);
        mask = static_cast<uint32_t>(~(size - 1)) & ~kBarMemFlagBits;
        bars_[bar + 1].upper_half = true;
        bars_[bar + 1].kind = kind;
        const uint32_t hi_mask = static_cast<uint32_t>(~(size - 1) >> 32);
        le::store32(&wmask_[off + 4], hi_mask);
        break;
    }
    le::store32(&wmask_[off], mask);
}

uint8_t PciDevice::add_capability(uint8_t id, std::span<const uint8_t> body, std::span<const uint8_t> writable)
{
    const unsigned len = 2 + body.size();
    const unsigned at = (next_cap_ + 3u) & ~3u;   // capabilities are dword aligned
    if (at + len > kConfigSpaceSize) throw Error(fmt::format("{}: no room for capability {:#x}", name_, id));
    if (!writable.empty() && writable.size() != body.size())
        throw Error(fmt::format("{}: capability {:#x} write mask size mismatch", name_, id));
    cfg_[at] = id;
    cfg_[at + 1] = 0;
    std::copy(body.begin(), body.end(), cfg_.begin() + at + 2);
    if (!writable.empty()) std::copy(writable.begin(), writable.end(), wmask_.begin() + at + 2);
    if (last_cap_)
        cfg_[last_cap_ + 1] = static_cast<uint8_t>(at);
    else
        cfg_[kCapabilitiesPtr] = static_cast<uint8_t>(at);
    set_cfg16(kStatus, cfg16(kStatus) | kStatusCapList);
    last_cap_ = static_cast<uint8_t>(at);
    next_cap_ = static_cast<uint8_t>(std::min<unsigned>(at + len, 0xff));
    return static_cast<uint8_t>(at);
}

void PciDevice::add_msix(unsigned vectors, unsigned bar)
{
    if (vectors == 0 || vectors > kMsixMaxVectors || msix_.vectors)
        throw Error(fmt::format("{}: bad MSI-X vector count {}", name_, vectors));
    const uint64_t table_bytes = uint64_t{vectors} * kMsixEntrySize;
    const uint64_t pba_offset = (table_bytes + 7) & ~uint64_t{7};
    const uint64_t pba_bytes = (vectors + 63) / 64 * 8;
    declare_bar(bar, PciBarKind::kMem32, std::bit_ceil(std::max<uint64_t>(4096, pba_offset + pba_bytes)));

    msix_.vectors = vectors;
    msix_.bar = bar;
    msix_.pba_offset = pba_offset;
    msix_.table.assign(table_bytes, 0);
    for (unsigned v = 0; v < vectors; ++v) msix_.table[v * kMsixEntrySize + kMsixEntryVectorControl] = kMsixVectorMasked;
    msix_.pending.assign((vectors + 63) / 64, 0);

    // Body: Message Control, Table Offset/BIR, PBA Offset/BIR (after ID, next).
    std::array<uint8_t, kMsixCapLen - 2> body{};
    std::array<uint8_t, kMsixCapLen - 2> wr{};
    const uint16_t control = static_cast<uint16_t>(vectors - 1);
    const uint32_t table = static_cast<uint32_t>(0) | bar;
    const uint32_t pba = static_cast<uint32_t>(pba_offset) | bar;
    le::store16(&body[0], control);
    le::store32(&body[2], table);
    le::store32(&body[6], pba);
    le::store16(&wr[0], kMsixControlEnable | kMsixControlFunctionMask);
    msix_.cap = add_capability(kCapIdMsix, body, wr);
}

void PciDevice::set_interrupt_pin(uint8_t pin) { cfg_[kInterruptPin] = pin; }

uint8_t PciDevice::interrupt_pin() const
{
    std::lock_guard lock(mutex_);
    return cfg_[kInterruptPin];
}

void PciDevice::connect_irqs(IrqLine intx, MsiSender msi)
{
    std::lock_guard lock(mutex_);
    intx_ = intx;
    msi_ = msi;
    if (intx_.connected()) cfg_[kInterruptLine] = static_cast<uint8_t>(intx_.gsi());
    intx_line_high_ = false;
    update_intx_locked();
}

void PciDevice::attach_buses(Bus& pio, Bus& mmio)
{
    std::lock_guard lock(mutex_);
    pio_ = &pio;
    mmio_ = &mmio;
    update_mappings_locked();
}

uint64_t PciDevice::bar_size(unsigned bar) const
{
    return bar < kNumBars && !bars_[bar].upper_half ? bars_[bar].size : 0;
}

PciBarKind PciDevice::bar_kind(unsigned bar) const { return bar < kNumBars ? bars_[bar].kind : PciBarKind::kMem32; }

void PciDevice::assign_bar(unsigned bar, uint64_t address)
{
    std::lock_guard lock(mutex_);
    if (bar >= kNumBars || !bars_[bar].size) throw Error(fmt::format("{}: no BAR {}", name_, bar));
    const unsigned off = kBar0 + 4 * bar;
    const uint32_t flags = cfg32(off) & (bars_[bar].kind == PciBarKind::kIo ? kBarIoFlagBits : kBarMemFlagBits);
    set_cfg32(off, (static_cast<uint32_t>(address) & ~(bars_[bar].kind == PciBarKind::kIo ? kBarIoFlagBits
                                                                                           : kBarMemFlagBits)) |
                       flags);
    if (bars_[bar].kind == PciBarKind::kMem64) set_cfg32(off + 4, static_cast<uint32_t>(address >> 32));
    update_mappings_locked();
}

void PciDevice::enable_decoding()
{
    std::lock_guard lock(mutex_);
    uint16_t cmd = cfg16(kCommand);
    for (const Bar& b : bars_) {
        if (!b.size) continue;
        cmd |= b.kind == PciBarKind::kIo ? kCommandIo : kCommandMemory;
    }
    set_cfg16(kCommand, cmd);
    update_mappings_locked();
}

std::optional<uint64_t> PciDevice::bar_address(unsigned bar) const
{
    std::lock_guard lock(mutex_);
    return bar < kNumBars ? bars_[bar].mapped : std::nullopt;
}

// --- BAR decoding --------------------------------------------------------------

uint64_t PciDevice::bar_register_value(unsigned bar) const
{
    const Bar& b = bars_[bar];
    const unsigned off = kBar0 + 4 * bar;
    switch (b.kind) {
    case PciBarKind::kIo:
        return cfg32(off) & ~kBarIoFlagBits;
    case PciBarKind::kMem32:
        return cfg32(off) & ~kBarMemFlagBits;
    case PciBarKind::kMem64:
    default:
        return (uint64_t{cfg32(off + 4)} << 32) | (cfg32(off) & ~kBarMemFlagBits);
    }
}

std::optional<uint64_t> PciDevice::decodable_address(unsigned bar) const
{
    const Bar& b = bars_[bar];
    if (!b.size || b.upper_half) return std::nullopt;
    const uint16_t cmd = cfg16(kCommand);
    const uint64_t addr = bar_register_value(bar);
    if (addr == 0 || addr + b.size < addr) return std::nullopt;
    if (b.kind == PciBarKind::kIo) {
        if (!(cmd & kCommandIo) || addr + b.size > kPciIoEnd) return std::nullopt;
        return addr;
    }
    if (!(cmd & kCommandMemory)) return std::nullopt;
    // A range that covers 0xffffffff is what a BAR reads back while being
    // sized (all-ones written), not a place to decode.
    if (addr <= 0xffff'ffffull && addr + b.size > 0xffff'ffffull) return std::nullopt;
    return addr;
}

void PciDevice::update_mappings_locked()
{
    for (unsigned i = 0; i < kNumBars; ++i) {
        Bar& b = bars_[i];
        if (!b.size || b.upper_half) continue;
        Bus* bus = b.kind == PciBarKind::kIo ? pio_ : mmio_;
        const std::optional<uint64_t> want = bus ? decodable_address(i) : std::nullopt;
        if (want == b.mapped) continue;
        if (b.mapped) {
            if (bus) bus->remove(*b.mapped);
            b.mapped.reset();
            bar_remapped(i, std::nullopt);
        }
        if (!want) continue;
        try {
            bus->add(*want, b.size, b.window, fmt::format("{} BAR{}", name_, i));
            b.mapped = want;
            bar_remapped(i, want);
        } catch (const Error& e) {
            // The guest put the BAR on top of something else: not decoded.
            bar_map_failures_.fetch_add(1);
            spdlog::warn("{}: BAR{} not mapped: {}", name_, i, e.what());
        }
    }
}

void PciDevice::bar_access_read(unsigned bar, uint64_t offset, std::span<uint8_t> data)
{
    if (bar == msix_.bar) {
        std::lock_guard lock(mutex_);
        for (size_t i = 0; i < data.size(); ++i) {
            const uint64_t o = offset + i;
            uint8_t v = 0;
            if (o < msix_.table.size()) {
                v = msix_.table[o];
            } else if (o >= msix_.pba_offset && o - msix_.pba_offset < msix_.pending.size() * 8) {
                const uint64_t byte = o - msix_.pba_offset;
                v = static_cast<uint8_t>(msix_.pending[byte / 8] >> (8 * (byte % 8)));
            }
            data[i] = v;
        }
        return;
    }
    bar_read(bar, offset, data);
}

void PciDevice::bar_access_write(unsigned bar, uint64_t offset, std::span<const uint8_t> data)
{
    if (bar == msix_.bar) {
        std::lock_guard lock(mutex_);
        bool control_written = false;
        for (size_t i = 0; i < data.size(); ++i) {
            const uint64_t o = offset + i;
            if (o >= msix_.table.size()) continue;   // PBA and the rest are read-only
            const unsigned field = o % kMsixEntrySize;
            uint8_t mask = 0xff;
            if (field == kMsixEntryAddrLo) mask = 0xfc;   // address bits 1:0 are 0 (dword aligned)
            if (field >= kMsixEntryVectorControl) {
                mask = field == kMsixEntryVectorControl ? static_cast<uint8_t>(kMsixVectorMasked) : 0;
                control_written = true;
            }
            msix_.table[o] = static_cast<uint8_t>((msix_.table[o] & ~mask) | (data[i] & mask));
        }
        if (control_written) msix_deliver_unmasked_locked();
        return;
    }
    bar_write(bar, offset, data);
}

// --- Configuration space ---------------------------------------------------------

void PciDevice::set_config_window(uint8_t offset, uint8_t len)
{
    window_offset_ = offset;
    window_len_ = len;
}

bool PciDevice::in_window(uint32_t offset, unsigned size) const
{
    return window_len_ && offset >= window_offset_ && offset + size <= uint32_t{window_offset_} + window_len_;
}

uint32_t PciDevice::config_read(uint32_t offset, unsigned size)
{
    if ((size != 1 && size != 2 && size != 4) || offset + size > kConfigSpaceSize)
        return size >= 4 ? 0xffff'ffff : (1u << (8 * size)) - 1;
    if (in_window(offset, size)) return config_window_read(offset, size);
    std::lock_guard lock(mutex_);
    return static_cast<uint32_t>(le::load(std::span<const uint8_t>(cfg_).subspan(offset, size)));
}

void PciDevice::config_write(uint32_t offset, unsigned size, uint32_t value)
{
    if ((size != 1 && size != 2 && size != 4) || offset + size > kConfigSpaceSize) return;
    if (in_window(offset, size)) return config_window_write(offset, size, value);
    std::lock_guard lock(mutex_);
    const uint16_t old_msix_control = msix_control_locked();
    uint8_t bytes[4];
    le::store32(bytes, value);
    for (unsigned i = 0; i < size; ++i) {
        const uint8_t m = wmask_[offset + i];
        cfg_[offset + i] = static_cast<uint8_t>((cfg_[offset + i] & ~m) | (bytes[i] & m));
    }
    const bool command = overlaps(offset, size, kCommand, 2);
    if (command || overlaps(offset, size, kBar0, 4 * kNumBars)) update_mappings_locked();
    bool intx = command;
    if (msix_.vectors && overlaps(offset, size, msix_.cap + kMsixMessageControl, 2)) {
        const uint16_t now = msix_control_locked();
        if ((now ^ old_msix_control) & kMsixControlEnable) intx = true;
        msix_deliver_unmasked_locked();
    }
    if (intx) update_intx_locked();
}

// --- Interrupts ------------------------------------------------------------------

void PciDevice::set_intx(bool asserted)
{
    std::lock_guard lock(mutex_);
    intx_asserted_ = asserted;
    uint16_t status = cfg16(kStatus);
    status = asserted ? (status | kStatusInterrupt) : (status & ~kStatusInterrupt);
    set_cfg16(kStatus, status);
    update_intx_locked();
}

void PciDevice::update_intx_locked()
{
    const bool high = intx_asserted_ && !(cfg16(kCommand) & kCommandIntxDisable) && !msix_enabled_locked();
    if (high == intx_line_high_) return;
    intx_line_high_ = high;
    intx_.set_level(high);
}

uint16_t PciDevice::msix_control_locked() const
{
    return msix_.vectors ? cfg16(msix_.cap + kMsixMessageControl) : 0;
}

bool PciDevice::msix_enabled_locked() const { return msix_control_locked() & kMsixControlEnable; }

bool PciDevice::msix_enabled() const
{
    std::lock_guard lock(mutex_);
    return msix_enabled_locked();
}

bool PciDevice::msix_masked_locked(unsigned vector) const
{
    return (msix_control_locked() & kMsixControlFunctionMask) ||
           (msix_.table[vector * kMsixEntrySize + kMsixEntryVectorControl] & kMsixVectorMasked);
}

void PciDevice::msix_send_locked(unsigned vector)
{
    msix_.pending[vector / 64] &= ~(uint64_t{1} << (vector % 64));
    const uint8_t* e = &msix_.table[vector * kMsixEntrySize];
    const uint64_t lo = le::load32(e + kMsixEntryAddrLo), hi = le::load32(e + kMsixEntryAddrHi);
    msi_.send(MsiMessage{(hi << 32) | lo, le::load32(e + kMsixEntryData)});
}

void PciDevice::msix_deliver_unmasked_locked()
{
    if (!msix_enabled_locked()) return;
    for (unsigned v = 0; v < msix_.vectors; ++v)
        if ((msix_.pending[v / 64] >> (v % 64) & 1) && !msix_masked_locked(v)) msix_send_locked(v);
}

bool PciDevice::msix_notify(uint16_t vector)
{
    std::lock_guard lock(mutex_);
    if (!msix_enabled_locked() || vector >= msix_.vectors) return false;
    if (msix_masked_locked(vector))
        msix_.pending[vector / 64] |= uint64_t{1} << (vector % 64);
    else
        msix_send_locked(vector);
    return true;
}

}  // namespace kvmini
