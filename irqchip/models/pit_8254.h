// The Intel 8254 programmable interval timer of a PC (ports 0x40-0x43) and
// the PC's System Control Port B (port 0x61: channel 2's gate, speaker enable,
// OUT2 and the refresh toggle), as a plain model for the split and user
// irqchip modes: no KVM calls, no threads, and no clock read inside; time is
// passed in (nanoseconds, any monotonic base) and turned into the 1.193182 MHz
// CLK input. The count and OUT are functions of the time since the counter
// was loaded, so reads are exact without ticking.
//
// Reference: Intel 8254 Programmable Interval Timer datasheet (order no.
// 231164): "Control Word Format" (Figure 7), "Write Operations", "Read
// Operations" (counter latch command, read-back command, status byte,
// Figures 10-12), "Mode Definitions" (modes 0-5), "Operations Common to All
// Modes" (GATE, the count loaded on the CLK pulse after it is written, null
// count, BCD, the minimum and maximum counts). Port 0x61: IBM PC/AT
// Technical Reference, "System Control Port B" (as in Intel PIIX/ICH
// datasheets, "NMI Status and Control Register").
//
// Modelling choices:
//  * Clock pulse k happens at time ceil(k * 1e9 / 1193182) ns. A count
//    written between pulses k and k+1 is loaded into the counting element
//    on pulse k+1 ("the count is loaded on the next CLK pulse"), so mode 0's
//    OUT rises N+1 pulses after the count is written, as the datasheet says.
//  * IRQ0: channel 0's OUT drives IRQ 0, which is edge-triggered on the PC
//    (ELCR bits 0-2 reserved), so only the rising edges of OUT0 matter. Each
//    rising edge the counter makes is a "tick"; a tick is delivered as a
//    pulse on the IRQ callback: irq(true) then irq(false). The line rests low.
//    The real level of OUT0 is in out(0, now) and the status byte.
//    PitPolicy decides what happens to ticks the backend saw late:
//      kReinject: every tick is delivered, one per acknowledgement: a tick is
//                 delivered at once if none is in flight, otherwise counted
//                 in pending_ticks(); ack_irq() (the guest EOI'd IRQ 0) ends
//                 the one in flight and delivers the next pending one. Without
//                 ack_irq() calls only the first tick is ever delivered.
//      kDiscard:  the ticks found at one on_timer()/access are one pulse; the
//                 others are counted as coalesced.
//    A control word for channel 0 drops its pending ticks. At most
//    kMaxPendingTicks wait (a guest that never acknowledges cannot grow
//    the backlog without bound); older ones are dropped and counted.
//  * next_event_ns() is the datasheet's next edge; whoever keeps the time
//    (the backends' timer thread) should not wake more often than every
//    kMinTimerPeriodNs, as KVM's PIT clamps its period to 200 us: a guest
//    that programs count 2 (1.7 us) then gets its ticks counted at each
//    wake-up, not a host thread spinning at 600 kHz.
//  * Power-on: every channel as after control word 0x36 (mode 3, LSB then
//    MSB, binary) with no count: OUT high, not counting, no ticks. Channels 0
//    and 1 have GATE high; channel 2's gate is port 0x61 bit 0 (low).
//  * Mode 2 with count 1 is illegal (counted odd): OUT stays low, no ticks.
//  * A control word clears any count or status latched but not read.
//  * Time that goes backwards (racing callers) is treated as no time passing.
//
// Thread safety: every method may be called from any thread; one mutex. The
// IRQ callback is never called with it held: pulses are queued under the
// lock and handed out, in order, by whichever caller finds the queue idle,
// after releasing it. The callback may call back into the model (ack_irq()
// included); a caller may return before another thread delivered the pulse
// it caused.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>

#include "devices/bus.h"
#include "irqchip/models/ordered_outbox.h"

namespace kvmini {

enum class PitPolicy { kReinject, kDiscard };

struct PitStats {
    uint64_t ticks = 0;            // rising edges of OUT0 made by the counter
    uint64_t irqs = 0;             // pulses delivered on IRQ 0
    uint64_t coalesced_ticks = 0;  // kDiscard: ticks merged into another pulse
    uint64_t dropped_ticks = 0;    // kReinject: ticks beyond kMaxPendingTicks, dropped
    uint64_t acks = 0;             // ack_irq() calls
    uint64_t control_reads = 0;    // reads of the write-only control port 0x43
    uint64_t odd_writes = 0;       // illegal counts, bad BCD digits, reserved bits
};

class Pit8254 {
public:
    using IrqCallback = std::function<void(bool level)>;
    // Where the BusDevice adapters get the time: nanoseconds, monotonic.
    using Clock = std::function<uint64_t()>;

    static constexpr uint64_t kInputHz = 1'193'182;  // CLK input of every channel
    static constexpr uint16_t kBase = 0x40;          // counters 0-2, control word 0x43
    static constexpr uint16_t kPorts = 4;
    static constexpr uint16_t kPortB = 0x61;
    static constexpr unsigned kChannels = 3;

    // CLOCK_MONOTONIC in nanoseconds: the default Clock.
    static uint64_t monotonic_ns();

    explicit Pit8254(IrqCallback irq0 = {}, PitPolicy policy = PitPolicy::kReinject, Clock clock = monotonic_ns);
    Pit8254(const Pit8254&) = delete;
    Pit8254& operator=(const Pit8254&) = delete;

    // Power-on state (see above); pending ticks dropped.
    void reset(uint64_t now_ns);

    // Port accesses at time `now_ns`: 0x40-0x43 and 0x61. Other ports read
    // 0xff and ignore writes.
    uint8_t read_port(uint16_t port, uint64_t now_ns);
    void write_port(uint16_t port, uint8_t value, uint64_t now_ns);

    // A channel's GATE input (channel 2's is also port 0x61 bit 0).
    void set_gate(unsigned channel, bool level, uint64_t now_ns);
    // A channel's OUT pin.
    bool out(unsigned channel, uint64_t now_ns);

    // Timer backend: when channel 0 next makes a tick (a rising edge of OUT0),
    // in the time base of the calls; nullopt if it never will as programmed.
    // Arm a timer for it and call on_timer() when it fires (late is fine).
    std::optional<uint64_t> next_event_ns() const;
    void on_timer(uint64_t now_ns);
    // The guest acknowledged (EOI'd) IRQ 0.
    void ack_irq();
    // kReinject: ticks elapsed but not delivered yet.
    uint64_t pending_ticks() const;
    static constexpr uint64_t kMaxPendingTicks = 1000;
    static constexpr uint64_t kMinTimerPeriodNs = 200'000;
    PitPolicy policy() const;
    // Switching policy drops pending ticks.
    void set_policy(PitPolicy policy);

    // Registers 0x40-0x43 and 0x61 on `pio`, the one way the PIT sits on a
    // bus; the adapters read `clock`. `after_write` runs after each guest
    // write (re-arm the timer).
    void attach(Bus& pio, const std::function<void()>& after_write = {});
    BusDevice& timer_device() { return timer_dev_; }
    BusDevice& port_b_device() { return port_b_dev_; }

    PitStats stats() const;

private:
    // One counter. The counting element (CE) runs in "segments": from pulse
    // `ref` on, with a value (or period) and phase; a pending load replaces
    // the segment at pulse `load_clk`.
    struct Channel {
        uint8_t control = 0;        // status bits 5-0: RW1 RW0 M2 M1 M0 BCD
        uint8_t mode = 0;           // 0..5 (6, 7 are 2, 3)
        uint8_t access = 3;         // 1 LSB, 2 MSB, 3 LSB then MSB
        bool bcd = false;
        bool gate = true;
        // Count register, write and read sequencing, latches.
        uint32_t cr = 0;            // the count as a number of pulses, 1..M
        bool have_count = false;    // a count was written since the control word
        bool null_count = true;
        bool write_msb_next = false;
        uint8_t write_lsb = 0;
        bool read_msb_next = false;
        bool count_latched = false;
        uint16_t latched_count = 0;
        bool status_latched = false;
        uint8_t latched_status = 0;
        // Counting element.
        bool running = false;       // a segment is valid
        uint64_t ref = 0;           // pulse at which the CE held `start`
        uint32_t start = 0;         // modes 0, 1, 4, 5: CE at ref, 1..M
        uint32_t period = 0;        // modes 2, 3: the reload value, 1..M
        uint32_t offset = 0;        // mode 3: position in the period at ref
        bool done = false;          // modes 0, 4: terminal count already passed
        bool suspended = false;     // stopped by GATE low (resumes on GATE high)
        uint32_t idle_ce = 0;       // CE while not running
        bool idle_out = true;       // OUT while not running
        bool idle_done = false;
        bool load_pending = false;
        uint64_t load_clk = 0;
        uint32_t load_value = 0;
        uint32_t load_offset = 0;
    };
    struct Snapshot {
        uint32_t ce;   // 0..M-1
        bool out;
    };
    class PortDevice : public BusDevice {
    public:
        PortDevice(Pit8254& pit, uint16_t base) : pit_(pit), base_(base) {}
        void read(uint64_t offset, std::span<uint8_t> data) override;
        void write(uint64_t offset, std::span<const uint8_t> data) override;

    private:
        Pit8254& pit_;
        uint16_t base_;
    };

    static uint64_t to_clk(uint64_t ns);
    static uint64_t to_ns(uint64_t clk);
    static uint32_t modulus(const Channel& ch) { return ch.bcd ? 10000 : 65536; }
    static Snapshot eval(const Channel& ch, uint64_t c);
    static std::optional<uint64_t> segment_next_edge(const Channel& ch, uint64_t after);
    static uint64_t segment_edges(const Channel& ch, uint64_t a, uint64_t b);
    static void apply_load(Channel& ch);
    static void freeze(Channel& ch, uint64_t c, std::optional<bool> forced_out);

    void reset_locked();
    uint64_t advance(uint64_t now_ns);  // sync to now; returns the current pulse
    void sync(uint64_t c);
    void ticks(uint64_t n);
    void pulse();
    uint8_t read_locked(uint16_t port, uint64_t c);
    void write_locked(uint16_t port, uint8_t value, uint64_t c);
    void write_control(uint8_t value, uint64_t c);
    void write_count(Channel& ch, uint16_t raw, uint64_t c);
    void latch_count(Channel& ch, uint64_t c);
    void latch_status(Channel& ch, uint64_t c);
    void gate_locked(Channel& ch, bool level, uint64_t c);
    uint32_t count_value(Channel& ch, uint16_t raw);
    uint16_t readback_value(const Channel& ch, uint32_t ce) const;
    void deliver(std::unique_lock<std::mutex>& lock);

    IrqCallback irq0_;
    PitPolicy policy_;
    Clock clock_;
    mutable std::mutex mutex_;
    std::array<Channel, kChannels> ch_{};
    uint64_t last_clk_ = 0;
    uint8_t port_b_ = 0;           // writable bits of port 0x61
    uint64_t pending_ = 0;
    bool in_flight_ = false;
    PitStats stats_;
    OrderedOutbox<bool> outbox_;
    PortDevice timer_dev_{*this, kBase};
    PortDevice port_b_dev_{*this, kPortB};
};

}  // namespace kvmini
