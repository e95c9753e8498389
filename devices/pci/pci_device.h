// One PCI function: its 256-byte configuration space (type 0 header, with
// write masks for the read-only fields), its BARs, a capability list, INTx and
// MSI-X. A concrete device derives from it, declares its BARs and capabilities
// in its constructor, and answers accesses to its own BARs in bar_read() /
// bar_write(). The MSI-X table and PBA live in a BAR of their own that this
// class answers.
//
// BARs are decoded only while the command register enables their space and the
// address is sane; every change (guest sizing, moving, decode on/off) is made
// real by removing / adding the BAR's range on the port or MMIO Bus.
//
// Threads: config and BAR accesses come from any vCPU thread, interrupts from a
// device's I/O thread. One mutex guards the config space, BAR mappings and the
// MSI-X table. Lock order for subclasses: their own locks first, then this
// one (set_intx / msix_notify / msix_enabled take it); bar_remapped() is
// called with it held.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "devices/bus.h"
#include "devices/pci/pci_regs.h"
#include "devices/irq_line.h"
#include "devices/le.h"

namespace kvmini {

class PciHostBridge;

struct PciIds {
    uint16_t vendor = 0;
    uint16_t device = 0;
    uint16_t subsystem_vendor = 0;
    uint16_t subsystem = 0;
    uint8_t revision = 0;
    uint32_t class_code = 0;   // base class << 16 | sub-class << 8 | prog-if
};

enum class PciBarKind { kIo, kMem32, kMem64 };

class PciDevice {
public:
    PciDevice(const PciIds& ids, std::string name);
    virtual ~PciDevice();
    PciDevice(const PciDevice&) = delete;
    PciDevice& operator=(const PciDevice&) = delete;

    const std::string& name() const { return name_; }

    // --- Set-up by the machine and the host bridge -------------------------
    // Interrupt outputs. INTx: the level line of this slot's pin
    // (gsi::pci_intx_gsi(slot, interrupt_pin() - 1)); MSI-X: the sender.
    // Also writes the GSI into the Interrupt Line register.
    void connect_irqs(IrqLine intx, MsiSender msi);
    // The buses BARs are decoded on (the host bridge calls this).
    void attach_buses(Bus& pio, Bus& mmio);
    // Size and kind of a declared BAR (size 0: BAR not implemented; the upper
    // half of a 64-bit BAR reports size 0).
    uint64_t bar_size(unsigned bar) const;
    PciBarKind bar_kind(unsigned bar) const;
    // Writes `address` into a BAR as firmware would (no decoding change).
    void assign_bar(unsigned bar, uint64_t address);
    // Sets the command register's I/O and memory enables (as firmware leaves
    // a device it assigned), mapping the BARs.
    void enable_decoding();
    // Where the BAR is decoded now; nullopt while it is not.
    std::optional<uint64_t> bar_address(unsigned bar) const;
    uint8_t interrupt_pin() const;
    // Removes every BAR from the buses. The destructor does it too; a derived
    // class calls it first in its own destructor so no access reaches a
    // half-destroyed device.
    void detach_from_buses();

    // --- Configuration space (from the host bridge) --------------------------
    // `offset` + `size` within 256 bytes, size 1, 2 or 4; little-endian.
    uint32_t config_read(uint32_t offset, unsigned size);
    void config_write(uint32_t offset, unsigned size, uint32_t value);

    // Guest misbehaviour and failures, counted (never fatal).
    uint64_t bar_map_failures() const { return bar_map_failures_.load(); }

protected:
    // --- For derived devices, in their constructor -------------------------
    // Declares a BAR. `size` is a power of two: >= 4 for I/O, >= 16 for memory
    // (kvmini uses >= 4096 so BARs sit in their own pages). A 64-bit BAR takes
    // `bar` and `bar`+1.
    void declare_bar(unsigned bar, PciBarKind kind, uint64_t size);
    // Appends a capability: `body` is everything after the ID and next bytes;
    // `writable` (same length, or empty for all read-only) the write mask of
    // each body byte. Returns its config-space offset.
    uint8_t add_capability(uint8_t id, std::span<const uint8_t> body, std::span<const uint8_t> writable = {});
    // Adds an MSI-X capability with `vectors` vectors, its table at offset 0
    // of BAR `bar` and the PBA after it; declares that BAR (32-bit memory).
    void add_msix(unsigned vectors, unsigned bar);
    void set_interrupt_pin(uint8_t pin);   // 1 = INTA#
    // A range of config space the device serves itself (such as virtio's
    // PCI_CFG data window): accesses wholly inside it go to
    // config_window_read/write, called without this class's lock held.
    void set_config_window(uint8_t offset, uint8_t len);
    virtual uint32_t config_window_read(uint32_t /*offset*/, unsigned /*size*/) { return 0; }
    virtual void config_window_write(uint32_t /*offset*/, unsigned /*size*/, uint32_t /*value*/) {}

    // Accesses to the device's own BARs (all but the MSI-X one). `offset` is
    // within the BAR; `data` 1..8 bytes.
    virtual void bar_read(unsigned bar, uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void bar_write(unsigned bar, uint64_t offset, std::span<const uint8_t> data) = 0;
    // A BAR was mapped at `address`, or unmapped (nullopt). Called with this
    // class's lock held: must not call back into PciDevice.
    virtual void bar_remapped(unsigned /*bar*/, std::optional<uint64_t> /*address*/) {}

    // --- Interrupts ---------------------------------------------------------
    // The device's INTx level: shown in the status register's interrupt bit;
    // reaches the line unless the command register's Interrupt Disable is set
    // or MSI-X is enabled.
    void set_intx(bool asserted);
    bool msix_enabled() const;
    uint16_t msix_vectors() const { return static_cast<uint16_t>(msix_.vectors); }
    // Signals MSI-X `vector`: sent now, or left pending in the PBA while it or
    // the function is masked (sent on unmask). False if MSI-X is disabled or
    // the vector does not exist (nothing is sent).
    bool msix_notify(uint16_t vector);

    // A BAR access as if it came from the bus (MSI-X BAR included).
    void bar_access_read(unsigned bar, uint64_t offset, std::span<uint8_t> data);
    void bar_access_write(unsigned bar, uint64_t offset, std::span<const uint8_t> data);

private:
    friend class PciHostBridge;
    // One BusDevice per BAR, forwarding to the device.
    class BarWindow : public BusDevice {
    public:
        PciDevice* device = nullptr;
        unsigned index = 0;
        void read(uint64_t offset, std::span<uint8_t> data) override { device->bar_access_read(index, offset, data); }
        void write(uint64_t offset, std::span<const uint8_t> data) override
        {
            device->bar_access_write(index, offset, data);
        }
    };
    struct Bar {
        PciBarKind kind = PciBarKind::kMem32;
        uint64_t size = 0;                       // 0: not implemented
        bool upper_half = false;                 // the high dword of a 64-bit BAR
        std::optional<uint64_t> mapped;          // where it is on the bus now
        BarWindow window;
    };
    struct Msix {
        unsigned vectors = 0;
        unsigned bar = pci::kNumBars;            // none
        uint8_t cap = 0;                          // config offset of the capability
        uint64_t pba_offset = 0;                  // within the BAR
        std::vector<uint8_t> table;               // vectors * 16 bytes, as the guest sees it
        std::vector<uint64_t> pending;            // PBA bits
    };

    bool in_window(uint32_t offset, unsigned size) const;
    uint16_t cfg16(unsigned off) const { return le::load16(&cfg_[off]); }
    uint32_t cfg32(unsigned off) const;
    void set_cfg16(unsigned off, uint16_t v);
    void set_cfg32(unsigned off, uint32_t v);
    uint64_t bar_register_value(unsigned bar) const;   // address bits only
    std::optional<uint64_t> decodable_address(unsigned bar) const;
    void update_mappings_locked();
    void update_intx_locked();
    uint16_t msix_control_locked() const;
    bool msix_enabled_locked() const;
    bool msix_masked_locked(unsigned vector) const;
    void msix_send_locked(unsigned vector);
    void msix_deliver_unmasked_locked();

    const std::string name_;
    mutable std::mutex mutex_;
    std::array<uint8_t, pci::kConfigSpaceSize> cfg_{};
    std::array<uint8_t, pci::kConfigSpaceSize> wmask_{};
    std::array<Bar, pci::kNumBars> bars_{};
    uint8_t window_offset_ = 0, window_len_ = 0;   // config window (len 0: none)
    uint8_t last_cap_ = 0;          // offset of the last capability (0: none yet)
    uint8_t next_cap_ = pci::kFirstCapability;
    Msix msix_;
    bool intx_asserted_ = false;
    bool intx_line_high_ = false;
    IrqLine intx_;
    MsiSender msi_;
    Bus* pio_ = nullptr;
    Bus* mmio_ = nullptr;
    PciHostBridge* host_ = nullptr;   // the bridge holding this device (it forgets us on destruction)
    std::atomic<uint64_t> bar_map_failures_{0};
};

}  // namespace kvmini
