#include "devices/pci/pci_host_bridge.h"

#include <cstring>

#include <spdlog/spdlog.h>

#include "devices/le.h"
#include "vmm/error.h"
#include "vmm/memory_layout.h"

namespace kvmini {

using namespace pci;

PciHostBridge::HostFunction::HostFunction()
    : PciDevice(PciIds{kHostBridgeVendor, kHostBridgeDevice, 0, 0, 0, kClassHostBridge}, "pci-host-bridge")
{
}

PciHostBridge::HostFunction::~HostFunction() { detach_from_buses(); }

void PciHostBridge::HostFunction::bar_read(unsigned, uint64_t, std::span<uint8_t> data)
{
    std::memset(data.data(), 0xff, data.size());
}

PciHostBridge::PciHostBridge(Bus& pio, Bus& mmio)
    : pio_(pio), mmio_(mmio), next_mmio_(layout::kPciMmioStart), next_io_(kPciIoStart)
{
    slots_[0] = &self_;
}

PciHostBridge::~PciHostBridge()
{
    // Devices keep their BARs on the buses; they just no longer have a bridge.
    std::lock_guard lock(mutex_);
    for (unsigned s = 1; s < kSlotsPerBus; ++s)
        if (slots_[s]) slots_[s]->host_ = nullptr;
}

void PciHostBridge::forget(PciDevice* dev)
{
    std::lock_guard lock(mutex_);
    for (unsigned s = 1; s < kSlotsPerBus; ++s)
        if (slots_[s] == dev) slots_[s] = nullptr;
}

uint8_t PciHostBridge::add_device(PciDevice& dev, uint8_t slot)
{
    std::lock_guard lock(mutex_);
    if (slot == 0) {
        for (unsigned s = 1; s < kSlotsPerBus && !slot; ++s)
            if (!slots_[s]) slot = static_cast<uint8_t>(s);
        if (!slot) throw Error("PCI bus 0 is full (31 devices): no slot for " + dev.name());
    }
    if (slot >= kSlotsPerBus || slots_[slot])
        throw Error(fmt::format("PCI slot {} is not free for {}", slot, dev.name()));

    // Pre-assign every BAR, naturally aligned, as firmware would.
    uint64_t mmio = next_mmio_, io = next_io_;
    for (unsigned b = 0; b < kNumBars; ++b) {
        const uint64_t size = dev.bar_size(b);
        if (!size) continue;
        uint64_t& next = dev.bar_kind(b) == PciBarKind::kIo ? io : mmio;
        const uint64_t end = dev.bar_kind(b) == PciBarKind::kIo ? kPciIoEnd : layout::kPciMmioEnd;
        const uint64_t at = (next + size - 1) & ~(size - 1);
        if (at + size > end)
            throw Error(fmt::format("PCI {} window is full: no room for {} BAR{} ({:#x} bytes)",
                                    dev.bar_kind(b) == PciBarKind::kIo ? "I/O" : "memory", dev.name(), b, size));
        dev.assign_bar(b, at);
        next = at + size;
    }
    dev.attach_buses(pio_, mmio_);
    dev.enable_decoding();
    next_mmio_ = mmio;
    next_io_ = io;
    slots_[slot] = &dev;
    dev.host_ = this;
    spdlog::debug("pci: {} at 00:{:02x}.0", dev.name(), slot);
    return slot;
}

void PciHostBridge::remove_device(uint8_t slot)
{
    std::lock_guard lock(mutex_);
    if (slot == 0 || slot >= kSlotsPerBus || !slots_[slot]) return;
    slots_[slot]->detach_from_buses();
    slots_[slot]->host_ = nullptr;
    slots_[slot] = nullptr;
}

PciDevice* PciHostBridge::device(uint8_t slot) const
{
    std::lock_guard lock(mutex_);
    return slot < kSlotsPerBus ? slots_[slot] : nullptr;
}

PciDevice* PciHostBridge::target(uint8_t bus, uint8_t slot, uint8_t function) const
{
    if (bus != 0 || function != 0 || slot >= kSlotsPerBus) return nullptr;
    return slots_[slot];
}

uint32_t PciHostBridge::config_read(uint8_t bus, uint8_t slot, uint8_t function, uint32_t offset, unsigned size)
{
    PciDevice* dev;
    {
        std::lock_guard lock(mutex_);
        dev = target(bus, slot, function);
    }
    if (!dev) return size >= 4 ? 0xffff'ffff : (1u << (8 * size)) - 1;
    return dev->config_read(offset, size);
}

void PciHostBridge::config_write(uint8_t bus, uint8_t slot, uint8_t function, uint32_t offset, unsigned size,
                                 uint32_t value)
{
    PciDevice* dev;
    {
        std::lock_guard lock(mutex_);
        dev = target(bus, slot, function);
    }
    if (dev) dev->config_write(offset, size, value);
}

// Offsets 0..3: CONFIG_ADDRESS (dword accesses only); 4..7: CONFIG_DATA.
void PciHostBridge::read(uint64_t offset, std::span<uint8_t> data)
{
    std::memset(data.data(), 0xff, data.size());
    uint32_t addr;
    {
        std::lock_guard lock(mutex_);
        addr = config_address_;
    }
    if (offset == 0 && data.size() == 4) {
        le::store(data, addr);
        return;
    }
    if (offset < 4 || offset + data.size() > kConfigPortsLen) return;
    if (!(addr & kConfigAddressEnable)) return;
    const uint32_t value =
        config_read(static_cast<uint8_t>(addr >> kConfigAddressBusShift), (addr >> kConfigAddressDevShift) & 0x1f,
                    (addr >> kConfigAddressFnShift) & 0x7, (addr & kConfigAddressRegMask) + (offset - 4),
                    static_cast<unsigned>(data.size()));
    le::store(data, value);
}

void PciHostBridge::write(uint64_t offset, std::span<const uint8_t> data)
{
    if (offset == 0 && data.size() == 4) {
        const uint32_t v = le::load32(data.data());
        std::lock_guard lock(mutex_);
        config_address_ = v & kConfigAddressWritable;
        return;
    }
    if (offset < 4 || offset + data.size() > kConfigPortsLen) return;
    uint32_t addr;
    {
        std::lock_guard lock(mutex_);
        addr = config_address_;
    }
    if (!(addr & kConfigAddressEnable)) return;
    const uint32_t value = static_cast<uint32_t>(le::load(data));
    config_write(static_cast<uint8_t>(addr >> kConfigAddressBusShift), (addr >> kConfigAddressDevShift) & 0x1f,
                 (addr >> kConfigAddressFnShift) & 0x7, (addr & kConfigAddressRegMask) + (offset - 4),
                 static_cast<unsigned>(data.size()), value);
}

}  // namespace kvmini
