// The I/O APIC (Intel 82093AA, with the version-0x20 EOI register of the
// PIIX/ICH I/O APICs), as a plain model for the split and user irqchip modes:
// no KVM calls, no threads, no clocks. Inputs are MMIO accesses (a
// BusDevice of 0x100 bytes at layout::kIoapicBase), pin levels (set_irq) and
// EOIs (eoi(), from the LAPIC's EOI broadcast or KVM_EXIT_IOAPIC_EOI);
// outputs are interrupt messages, handed to a delivery callback.
//
// Reference: Intel 82093AA I/O Advanced Programmable Interrupt Controller
// (IOAPIC) datasheet (order no. 290566), 3.0 "Register Description": 3.1
// "Memory Mapped Registers" (IOREGSEL, IOWIN), 3.2.1 IOAPICID, 3.2.2
// IOAPICVER, 3.2.3 IOAPICARB, 3.2.4 IOREDTBL[23:0]. The EOI register at 0x40
// is from the Intel ICH/PCH datasheets ("EOI Register", I/O APIC version
// 0x20). MSI format: Intel SDM vol. 3A 11.11.1 and 11.11.2.
//
// Modelling choices:
//  * set_irq(pin, level) takes the state of the interrupt source, as kvmini's
//    IrqLines carry it (true = the device asserts). The board wires some pins
//    active-low (PCI INTx#, GSIs 16-23, gsi_layout.h): on those pins the
//    electrical level is the inverse, and an idle pin is electrically high.
//    The model then applies the programmed polarity (bit 13) to the
//    electrical level, as the chip does; a guest that programs a pin's
//    polarity against the wiring (the MP/ACPI tables) sees it inverted.
//  * Delivery status (bit 12) is 1 from the moment an edge or level is
//    detected until the delivery callback for that message has returned
//    (3.2.4: "a new edge ... will not be recognized until the IOAPIC Unit
//    broadcasts the corresponding message ... and the message has been
//    accepted"). An edge arriving meanwhile is lost and counted as coalesced.
//  * Remote IRR (bit 14) is set when a level-triggered fixed or lowest
//    priority message is sent (the LAPIC accepts it at once) and cleared by
//    an EOI with its vector; if the input is still asserted, the interrupt
//    is sent again. Writing trigger mode = edge clears it (what Linux relies
//    on for I/O APICs without an EOI register).
//  * SMI, NMI, INIT and ExtINT are edge-triggered whatever bit 15 says (3.2.4
//    "Requires edge trigger mode"); a level setting for them is counted odd.
//  * Not delivered, counted: reserved delivery modes (011, 110) and vectors
//    0x00-0x0f with fixed or lowest priority (the LAPIC rejects them as
//    illegal vectors, SDM 11.5.3). The input is evaluated again on the next
//    change, RTE write or EOI.
//  * Changing polarity or trigger mode does not by itself create an edge.
//  * The destination is the 8-bit field 63:56 in both modes (the 82093AA
//    uses bits 59:56 in physical mode; KVM's xAPIC IDs are 8 bits).
//
// Thread safety: every method may be called from any thread; one mutex.
// Callbacks are never called with it held: messages are queued under the
// lock and handed out, in order, by whichever caller finds the queue idle,
// after releasing it. A callback may call back into the model; a caller may
// return before another thread delivered the message it caused.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>

#include "devices/bus.h"
#include "irqchip/models/apic_bus.h"
#include "irqchip/models/ordered_outbox.h"
#include "irqchip/gsi_layout.h"
#include "devices/irq_line.h"

namespace kvmini {

// IOREDTBL delivery mode, bits 10:8 (3.2.4): the APIC bus's encoding
// (the I/O APIC never sends kStartup; 011 and 110 are reserved for it).
using IoapicDeliveryMode = ApicDeliveryMode;

// One interrupt message, as the I/O APIC would put it on the APIC bus.
struct IoapicDelivery {
    uint8_t vector = 0;
    IoapicDeliveryMode delivery_mode = IoapicDeliveryMode::kFixed;
    uint8_t destination = 0;   // APIC ID (physical) or logical set
    bool logical = false;      // destination mode (bit 11)
    bool level = false;        // trigger mode as sent (level only for fixed/lowest)
    uint8_t pin = 0;           // which input sent it
    bool operator==(const IoapicDelivery&) const = default;
};

// The same message on the APIC bus (user mode hands it to kvmini's LAPICs),
// and as an MSI (split mode hands it to KVM's LAPIC this way, apic_bus.h).
ApicMessage to_apic_message(const IoapicDelivery& d);
MsiMessage to_msi(const IoapicDelivery& d);

struct IoapicStats {
    uint64_t deliveries = 0;         // messages handed to the callback
    uint64_t eois = 0;               // eoi() calls and EOI register writes
    uint64_t remote_irr_cleared = 0; // entries whose remote IRR an EOI cleared
    uint64_t redeliveries = 0;       // level inputs sent again, asserted throughout
    uint64_t coalesced_edges = 0;    // edges lost while the previous was in flight
    uint64_t masked_edges = 0;       // edges on a masked pin (ignored, 3.2.4)
    uint64_t illegal_vectors = 0;    // fixed/lowest priority with vector < 16
    uint64_t reserved_modes = 0;     // delivery mode 011 or 110
    uint64_t odd_accesses = 0;       // reserved bits, read-only registers,
                                     // unknown registers, bad access widths
};

// The board's wiring: bit n set = pin n is driven by an active-low wire.
// kvmini's PC: PCI INTx on GSIs 16..23 (gsi_layout.h).
inline constexpr uint32_t kPcActiveLowPins = ((1u << gsi::kPciGsis) - 1) << gsi::kFirstPciGsi;

struct IoapicConfig {
    uint8_t id = 0;                              // initial IOAPICID (the MP table's)
    uint32_t active_low_pins = kPcActiveLowPins;
    // IOAPICVER bits 7:0. 0x20 and up have the EOI register at 0x40; 0x11
    // (the 82093AA itself, and what KVM's in-kernel IOAPIC reports) has not:
    // writes there are then counted odd and ignored. Use the value the MP
    // table advertises.
    uint8_t version = 0x20;
};

class Ioapic : public BusDevice {
public:
    using DeliverCallback = std::function<void(const IoapicDelivery&)>;
    // A level-triggered entry's remote IRR was cleared by an EOI (for
    // resampling a level source).
    using EoiCallback = std::function<void(unsigned pin, uint8_t vector)>;

    static constexpr unsigned kPins = gsi::kIoapicPins;
    static constexpr uint64_t kMmioSize = 0x100;  // IOREGSEL, IOWIN, EOI

    explicit Ioapic(DeliverCallback deliver, IoapicConfig config = {}, EoiCallback on_eoi = {});
    Ioapic(const Ioapic&) = delete;
    Ioapic& operator=(const Ioapic&) = delete;

    // Power-on state: every entry masked (3.2.4 default), ID from the config.
    void reset();

    // The source on `pin` (0..23) asserts (true) or not; other pins ignored.
    void set_irq(unsigned pin, bool asserted);
    // An EOI for `vector`.
    void eoi(uint8_t vector);

    // BusDevice: offsets within the 0x100-byte window.
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;
    // Registers the window at layout::kIoapicBase on `mmio`: the one way the
    // IOAPIC sits on a bus. `after_write` runs after each guest write.
    void attach(Bus& mmio, const std::function<void()>& after_write = {});

    // Indirect register access (IOREGSEL index), as through IOWIN.
    uint32_t read_register(uint8_t index);
    void write_register(uint8_t index, uint32_t value);

    // Inspection (no side effects).
    uint64_t redirection_entry(unsigned pin) const;
    // The message `pin` is programmed to send, or nullopt while it is masked
    // or holds a value the chip would not deliver (reserved mode, illegal
    // vector). Split mode mirrors these into KVM's IOAPIC routes.
    std::optional<IoapicDelivery> programmed_message(unsigned pin) const;
    IoapicStats stats() const;

private:
    struct Pin {
        uint64_t rte = 0;       // writable bits only
        bool electrical = false;// level on the wire
        bool active = false;    // after polarity, as last evaluated
        bool remote_irr = false;
        bool in_flight = false; // delivery status
        bool held = false;      // level sent, input asserted ever since
    };
    struct Event {
        bool is_eoi;
        IoapicDelivery delivery;  // for EOIs: pin and vector
    };

    void reset_locked();
    bool input_active(const Pin& p) const;
    void evaluate(unsigned pin, bool edge_possible);
    uint32_t read_register_locked(uint8_t index);
    void write_register_locked(uint8_t index, uint32_t value);
    void eoi_locked(uint8_t vector);
    void deliver(std::unique_lock<std::mutex>& lock);

    DeliverCallback deliver_;
    EoiCallback on_eoi_;
    IoapicConfig config_;
    mutable std::mutex mutex_;
    uint32_t ioregsel_ = 0;
    uint8_t id_ = 0;
    std::array<Pin, kPins> pins_{};
    IoapicStats stats_;
    OrderedOutbox<Event> outbox_;
};

}  // namespace kvmini
