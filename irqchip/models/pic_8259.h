// The two cascaded Intel 8259A programmable interrupt controllers of a PC, as
// a plain model for the split and user irqchip modes: no KVM calls, no
// threads, no clocks. Inputs are port accesses (BusDevice adapters for
// 0x20-0x21, 0xa0-0xa1 and the ELCR at 0x4d0-0x4d1), line levels
// (set_irq) and the CPU's interrupt acknowledge (acknowledge()); outputs are
// the master's INT pin and EOIs, reported through callbacks.
//
// Reference: Intel 8259A Programmable Interrupt Controller datasheet
// (order no. 231468), sections "Interrupt Sequence", "Programming the 8259A",
// "Initialization Command Words", "Operation Command Words", "Fully Nested
// Mode", "End of Interrupt", "Automatic Rotation", "Specific Rotation",
// "Special Mask Mode", "Poll Command", "Reading the 8259A Status",
// "Edge and Level Triggered Modes", "The Special Fully Nested Mode",
// "Cascade Mode". The ELCR is the PC chipset's Edge/Level Control Register
// (Intel 82371 PIIX / ICH datasheets, "ELCR1/ELCR2"), which replaces ICW1's
// global LTIM bit per IRQ.
//
// Modelling choices (each a place where a VM differs from a circuit):
//  * Edge mode latches a request in IRR on the 0->1 change of the input and
//    keeps it until the INTA cycle, even if the input falls first: kvmini's
//    IrqLine::pulse() raises and lowers a line at once, long before any INTA.
//    A request therefore "disappears before INTA" (spurious IRQ 7 / 15) when
//    a level-mode input falls, when IMR masks the request, or when the slave's
//    request vanishes after the master latched IR2.
//  * A level input is level-triggered if ICW1.LTIM is set or its ELCR bit is.
//  * The INTA cycle resets INT; a chip still holding a request raises INT
//    again afterwards, so the slave's next request is a fresh edge on the
//    master's IR2 (as with AEOI on the slave).
//  * MCS-80/85 mode (ICW4.uPM = 0, or no ICW4) is counted as an odd write;
//    vectors are still the 8086-mode vectors (ICW2.T7-T3 | IR number).
//  * Power-on state: what a PC BIOS (SeaBIOS) leaves: 8086 mode, cascade on
//    IR2, vectors 0x08 and 0x70, all inputs masked but the master's IR2.
//
// Thread safety: every method may be called from any thread. One mutex guards
// the state. Callbacks are NEVER called with that mutex held: events are
// queued under the lock and handed out, in order, by whichever caller finds
// the queue idle, after it released the lock. So a callback may call back
// into the model (the events this causes are delivered after it returns), but
// a caller may return before another thread delivered the event it caused.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

#include "devices/bus.h"
#include "irqchip/models/ordered_outbox.h"

namespace kvmini {

// Counters, for the mode comparison and for spotting guest misbehaviour.
struct PicStats {
    uint64_t acknowledges = 0;    // INTA cycles (acknowledge() calls)
    uint64_t spurious_irq7 = 0;   // INTA with no request on the master
    uint64_t spurious_irq15 = 0;  // INTA resolved to the slave, which had none
    uint64_t eois = 0;            // EOI commands (OCW2), AEOI not included
    uint64_t polls = 0;           // poll-command reads
    uint64_t odd_writes = 0;      // reserved bits set, EOI with nothing in
                                  // service, MCS-80 mode, single mode, ...
};

class Pic8259Pair {
public:
    // The master's INT pin changed. Backends request an interrupt window or
    // kick a vCPU on true.
    using OutputCallback = std::function<void(bool level)>;
    // An in-service bit was cleared by an EOI command or by AEOI: `irq` is
    // 0..15 (2 is the cascade). For ack notifiers (PIT tick reinjection).
    using EoiCallback = std::function<void(unsigned irq)>;

    // Port layout (PC/AT): 8259A A0 selects the even/odd port.
    static constexpr uint16_t kMasterBase = 0x20;
    static constexpr uint16_t kSlaveBase = 0xa0;
    static constexpr uint16_t kElcrBase = 0x4d0;  // 0x4d0: IRQ 0-7, 0x4d1: IRQ 8-15
    static constexpr uint16_t kPortsPerChip = 2;
    static constexpr unsigned kCascadeIrq = 2;

    explicit Pic8259Pair(OutputCallback on_output = {}, EoiCallback on_eoi = {});
    Pic8259Pair(const Pic8259Pair&) = delete;
    Pic8259Pair& operator=(const Pic8259Pair&) = delete;

    // Power-on state (see the header comment); INT falls if it was high.
    void reset();

    // Input `irq` (0..15) is at `level`. IRQ 2 is the cascade input and
    // numbers above 15 do not exist: both are ignored.
    void set_irq(unsigned irq, bool level);

    // The master's INT pin.
    bool output() const;

    // The CPU's INTA cycle: moves the winning request from IRR to ISR on the
    // master (and on the slave if the master picked the cascade input),
    // applies AEOI and returns the vector. Nothing to acknowledge: the master
    // returns its IR7 vector (spurious IRQ 7) and sets no ISR bit; the master
    // picked IR2 but the slave has nothing: the slave's IR7 vector (spurious
    // IRQ 15), with the master's ISR bit 2 set (it needs an EOI).
    uint8_t acknowledge();

    // Port accesses by absolute port number (0x20, 0x21, 0xa0, 0xa1, 0x4d0,
    // 0x4d1); any other port reads 0xff and ignores writes.
    uint8_t read_port(uint16_t port);
    void write_port(uint16_t port, uint8_t value);

    // Registers the three port ranges on `pio`: the one way the pair sits on
    // a bus. `after_write` runs after each guest write.
    void attach(Bus& pio, const std::function<void()>& after_write = {});
    BusDevice& master_device() { return master_dev_; }
    BusDevice& slave_device() { return slave_dev_; }
    BusDevice& elcr_device() { return elcr_dev_; }

    // Inspection (no side effects). chip 0 = master, 1 = slave.
    uint8_t irr(unsigned chip) const;
    uint8_t isr(unsigned chip) const;
    uint8_t imr(unsigned chip) const;
    uint8_t elcr(unsigned chip) const;
    uint8_t vector_base(unsigned chip) const;
    PicStats stats() const;

private:
    // One 8259A.
    struct Chip {
        uint8_t irr = 0;
        uint8_t isr = 0;
        uint8_t imr = 0;
        uint8_t elcr = 0;
        uint8_t elcr_writable = 0;  // ELCR bits that may be set
        uint8_t lines = 0;          // input levels, for edge detection
        uint8_t highest = 0;        // IR with the highest priority (rotation)
        uint8_t vector_base = 0;    // ICW2 & 0xf8
        uint8_t icw3 = 0;           // master: slave bitmap; slave: its ID
        uint8_t init_next = 0;      // next ICW expected (2, 3, 4), 0 = ready
        bool icw4_needed = false;   // ICW1.IC4
        bool single = false;        // ICW1.SNGL
        bool ltim = false;          // ICW1.LTIM
        bool x86_mode = false;      // ICW4.uPM
        bool aeoi = false;          // ICW4.AEOI
        bool sfnm = false;          // ICW4.SFNM
        bool rotate_on_aeoi = false;// OCW2 R=1 SL=0 EOI=0
        bool special_mask = false;  // OCW3 ESMM/SMM
        bool read_isr = false;      // OCW3 RR/RIS: false = IRR
        bool poll = false;          // OCW3 P: next read is a poll
    };
    // The BusDevice for one port range.
    class PortDevice : public BusDevice {
    public:
        PortDevice(Pic8259Pair& pic, uint16_t base) : pic_(pic), base_(base) {}
        void read(uint64_t offset, std::span<uint8_t> data) override;
        void write(uint64_t offset, std::span<const uint8_t> data) override;

    private:
        Pic8259Pair& pic_;
        uint16_t base_;
    };
    struct Event {
        bool is_eoi;
        unsigned value;  // INT level or IRQ
    };

    void reset_locked();
    bool is_master(const Chip& c) const { return &c == &chips_[0]; }
    bool level_triggered(const Chip& c, unsigned ir) const;
    void drive_input(Chip& c, unsigned ir, bool level);
    int pending_request(const Chip& c) const;
    void intack(Chip& c, unsigned ir);
    void clear_isr(Chip& c, unsigned ir);
    void update_locked();
    uint8_t read_locked(uint16_t port);
    void write_locked(uint16_t port, uint8_t value);
    void write_command(Chip& c, uint8_t value);
    void write_data(Chip& c, uint8_t value);
    uint8_t poll_locked(Chip& c);
    // Hands queued events to the callbacks; releases and retakes `lock`.
    void deliver(std::unique_lock<std::mutex>& lock);

    OutputCallback on_output_;
    EoiCallback on_eoi_;
    mutable std::mutex mutex_;
    Chip chips_[2];
    bool int_level_ = false;  // last INT level queued
    PicStats stats_;
    OrderedOutbox<Event> outbox_;
    PortDevice master_dev_{*this, kMasterBase};
    PortDevice slave_dev_{*this, kSlaveBase};
    PortDevice elcr_dev_{*this, kElcrBase};
};

}  // namespace kvmini
