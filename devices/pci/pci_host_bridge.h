// The PCI host bridge: configuration mechanism #1 (ports 0xcf8..0xcff, PCI 3.0
// 3.2.2.3.2) for bus 0, device 0 being the bridge itself (class 0600h). It
// places devices in slots and pre-assigns their BARs as PC firmware would
// (memory BARs from layout::kPciMmioStart upward, I/O BARs from 0xc000, each
// naturally aligned), with decoding on, so a Linux guest without firmware
// keeps them; the guest may move them later.
//
// Machine wiring:
//   PciHostBridge bridge(pio, mmio);
//   pio.add(pci::kConfigAddressPort, pci::kConfigPortsLen, bridge, "pci-host-bridge");
//   uint8_t slot = bridge.add_device(dev);           // slots 1.. in order
//   dev.connect_irqs(router.line(gsi::pci_intx_gsi(slot, dev.interrupt_pin() - 1)), router.msi_sender());
// Devices are not owned. A device destroyed first leaves its slot (and the
// buses) by itself; the buses must outlive every device.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>

#include "devices/bus.h"
#include "devices/pci/pci_device.h"

namespace kvmini {

class PciHostBridge : public BusDevice {
public:
    PciHostBridge(Bus& pio, Bus& mmio);
    ~PciHostBridge() override;

    // Puts `dev` in `slot` (1..31), or the first free slot if slot is 0;
    // assigns and maps its BARs. Returns the slot. Throws Error if the slot is
    // taken or out of range, or if the BAR windows are full.
    uint8_t add_device(PciDevice& dev, uint8_t slot = 0);
    void remove_device(uint8_t slot);
    PciDevice* device(uint8_t slot) const;

    // Ports 0xcf8..0xcff (register at pci::kConfigAddressPort, kConfigPortsLen).
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // A configuration access as mechanism #1 would make it (for tests and
    // tools): all-ones for nothing there.
    uint32_t config_read(uint8_t bus, uint8_t slot, uint8_t function, uint32_t offset, unsigned size);
    void config_write(uint8_t bus, uint8_t slot, uint8_t function, uint32_t offset, unsigned size, uint32_t value);

private:
    friend class PciDevice;
    void forget(PciDevice* dev);   // from ~PciDevice
    // 00:00.0, the bridge's own function (no BARs).
    class HostFunction : public PciDevice {
    public:
        HostFunction();
        ~HostFunction() override;

    protected:
        void bar_read(unsigned, uint64_t, std::span<uint8_t> data) override;
        void bar_write(unsigned, uint64_t, std::span<const uint8_t>) override {}
    };

    PciDevice* target(uint8_t bus, uint8_t slot, uint8_t function) const;

    Bus& pio_;
    Bus& mmio_;
    HostFunction self_;
    mutable std::mutex mutex_;
    uint32_t config_address_ = 0;
    std::array<PciDevice*, pci::kSlotsPerBus> slots_{};
    uint64_t next_mmio_;
    uint64_t next_io_;
};

}  // namespace kvmini
