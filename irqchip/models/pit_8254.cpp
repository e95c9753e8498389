#include "irqchip/models/pit_8254.h"

#include <time.h>

#include <algorithm>
#include <utility>

namespace kvmini {

namespace {

// Control word, 8254 datasheet Figure 7 "Control Word Format":
// SC1 SC0 RW1 RW0 M2 M1 M0 BCD, written to A1 A0 = 11 (port 0x43).
inline constexpr unsigned kScShift = 6;
inline constexpr unsigned kScReadBack = 3;   // 11: read-back command
inline constexpr unsigned kRwShift = 4;
inline constexpr unsigned kRwMask = 3;
inline constexpr unsigned kRwLatch = 0;      // 00: counter latch command
inline constexpr unsigned kRwLsb = 1;        // 01: LSB only
inline constexpr unsigned kRwMsb = 2;        // 10: MSB only
inline constexpr unsigned kRwBoth = 3;       // 11: LSB then MSB
inline constexpr unsigned kModeShift = 1;
inline constexpr unsigned kModeMask = 7;     // 110 and 111 are modes 2 and 3 ("X10", "X11")
inline constexpr uint8_t kBcd = 0x01;
inline constexpr uint8_t kControlBits = 0x3f;// what the status byte repeats
// Read-back command, Figure 10: 1 1 COUNT# STATUS# CNT2 CNT1 CNT0 0.
inline constexpr uint8_t kRbNoCount = 0x20;
inline constexpr uint8_t kRbNoStatus = 0x10;
inline constexpr unsigned kRbCnt0Shift = 1;
inline constexpr uint8_t kRbReserved = 0x01;
// Status byte, Figure 11: OUTPUT NULL-COUNT RW1 RW0 M2 M1 M0 BCD.
inline constexpr uint8_t kStatusOut = 0x80;
inline constexpr uint8_t kStatusNullCount = 0x40;
// Counter range ("Operations Common to All Modes"): a count of 0 is the
// maximum, 2^16 in binary and 10^4 in BCD.
inline constexpr uint32_t kBinaryModulus = 65536;
inline constexpr uint32_t kBcdModulus = 10000;
inline constexpr uint8_t kPowerOnControl = 0x36;  // mode 3, LSB then MSB, binary
inline constexpr uint8_t kControlPortRead = 0xff; // A1 A0 = 11 read: "no-operation (3-state)"

// System Control Port B (port 0x61), PC/AT.
inline constexpr uint8_t kPortBGate2 = 0x01;      // R/W: timer 2 gate
inline constexpr uint8_t kPortBWritable = 0x0f;   // R/W: bit 1 speaker data enable (stored:
                                                  // no sound), bits 2, 3 parity/IOCHK check enables
inline constexpr uint8_t kPortBRefresh = 0x10;    // RO: toggles every refresh cycle
inline constexpr uint8_t kPortBOut2 = 0x20;       // RO: timer 2 OUT
inline constexpr uint64_t kRefreshHalfPeriodClk = 18;  // 15.085 us, the AT's refresh rate

inline constexpr uint64_t kNsPerSecond = 1'000'000'000;

}  // namespace

uint64_t Pit8254::monotonic_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * kNsPerSecond + static_cast<uint64_t>(ts.tv_nsec);
}

// Pulse k happens at ceil(k * 1e9 / f) ns; at time t, pulses up to
// floor(t * f / 1e9) have happened.
uint64_t Pit8254::to_clk(uint64_t ns)
{
    return static_cast<uint64_t>(static_cast<unsigned __int128>(ns) * kInputHz / kNsPerSecond);
}

uint64_t Pit8254::to_ns(uint64_t clk)
{
    return static_cast<uint64_t>((static_cast<unsigned __int128>(clk) * kNsPerSecond + kInputHz - 1) / kInputHz);
}

Pit8254::Pit8254(IrqCallback irq0, PitPolicy policy, Clock clock)
    : irq0_(std::move(irq0)), policy_(policy), clock_(clock ? std::move(clock) : Clock(monotonic_ns))
{
    reset_locked();
}

void Pit8254::reset(uint64_t now_ns)
{
    std::unique_lock lock(mutex_);
    last_clk_ = std::max(last_clk_, to_clk(now_ns));
    reset_locked();
}

void Pit8254::reset_locked()
{
    for (unsigned i = 0; i < kChannels; ++i) {
        Channel& ch = ch_[i];
        ch = Channel{};
        ch.control = kPowerOnControl & kControlBits;
        ch.access = (kPowerOnControl >> kRwShift) & kRwMask;
        ch.mode = (kPowerOnControl >> kModeShift) & kModeMask;
        ch.gate = i != 2;  // channels 0 and 1: GATE tied high; 2: port 0x61 bit 0
        ch.idle_out = true;
    }
    port_b_ = 0;
    pending_ = 0;
    in_flight_ = false;
}

// ---- The counting element, as a function of time ("Mode Definitions") ----

Pit8254::Snapshot Pit8254::eval(const Channel& ch, uint64_t c)
{
    if (!ch.running) return {ch.idle_ce, ch.idle_out};
    const uint32_t m = modulus(ch);
    const uint64_t d = c - ch.ref;  // pulses since the segment began
    switch (ch.mode) {
    case 0:  // interrupt on terminal count: OUT low until the CE reaches 0
    case 1:  // hardware retriggerable one-shot: low from the trigger until 0
    case 4:  // software triggered strobe: low for the one pulse the CE is 0
    case 5: {// hardware triggered strobe: same, started by GATE
        const uint32_t ce = static_cast<uint32_t>((ch.start + m - d % m) % m);
        const bool out = (ch.mode <= 1) ? (ch.done || d >= ch.start) : (ch.done || d != ch.start);
        return {ce, out};
    }
    case 2: {  // rate generator: CE N..1, OUT low while it is 1, reload
        const uint32_t n = ch.period;
        const uint32_t p = static_cast<uint32_t>(d % n);
        return {(n - p) % m, p != n - 1};
    }
    case 3:  // square wave: high (N+1)/2 pulses, low N/2, CE counts by 2
    default: {
        const uint32_t n = ch.period;
        const uint32_t p = static_cast<uint32_t>((d + ch.offset) % n);
        const uint32_t half = (n + 1) / 2;
        const uint32_t top = n & ~1u;  // odd counts load N-1
        const uint32_t ce = p < half ? top - 2 * p : top - 2 * (p - half);
        return {ce % m, p < half};
    }
    }
}

namespace {
struct EdgeSeries {
    uint64_t first;
    uint64_t period;  // 0: a single edge
};
}  // namespace

// The rising edges of OUT the segment will make (ticks).
static std::optional<EdgeSeries> edge_series(uint8_t mode, bool running, bool done, uint64_t ref, uint32_t start,
                                             uint32_t period, uint32_t offset)
{
    if (!running) return std::nullopt;
    switch (mode) {
    case 0:
    case 1:
        if (done) return std::nullopt;
        return EdgeSeries{ref + start, 0};
    case 4:
    case 5:
        if (done) return std::nullopt;
        return EdgeSeries{ref + start + 1, 0};
    case 2:
        if (period < 2) return std::nullopt;
        return EdgeSeries{ref + period, period};
    case 3:
    default:
        if (period < 2) return std::nullopt;
        return EdgeSeries{ref + (period - offset), period};
    }
}

std::optional<uint64_t> Pit8254::segment_next_edge(const Channel& ch, uint64_t after)
{
    const auto s = edge_series(ch.mode, ch.running, ch.done, ch.ref, ch.start, ch.period, ch.offset);
    if (!s) return std::nullopt;
    if (after < s->first) return s->first;
    if (s->period == 0) return std::nullopt;
    return s->first + ((after - s->first) / s->period + 1) * s->period;
}

uint64_t Pit8254::segment_edges(const Channel& ch, uint64_t a, uint64_t b)
{
    const auto s = edge_series(ch.mode, ch.running, ch.done, ch.ref, ch.start, ch.period, ch.offset);
    if (!s || b < s->first) return 0;
    if (s->period == 0) return a < s->first ? 1 : 0;
    const uint64_t upto_b = (b - s->first) / s->period + 1;
    const uint64_t upto_a = a < s->first ? 0 : (a - s->first) / s->period + 1;
    return upto_b - upto_a;
}

// The count register is transferred to the CE at pulse load_clk.
void Pit8254::apply_load(Channel& ch)
{
    ch.load_pending = false;
    ch.null_count = false;
    const uint32_t m = modulus(ch);
    const bool gated_off = !ch.gate && (ch.mode == 0 || ch.mode == 2 || ch.mode == 3 || ch.mode == 4);
    if (gated_off) {
        // Loaded but not counting until GATE rises.
        ch.running = false;
        ch.suspended = true;
        ch.idle_ce = ch.load_value % m;
        ch.idle_out = ch.mode != 0;
        ch.idle_done = false;
        return;
    }
    ch.running = true;
    ch.suspended = false;
    ch.ref = ch.load_clk;
    ch.start = ch.load_value;
    ch.period = ch.load_value;
    ch.offset = ch.load_offset;
    ch.done = false;
}

// Stops the CE where it is. `forced_out`: OUT from now on (else as it is).
void Pit8254::freeze(Channel& ch, uint64_t c, std::optional<bool> forced_out)
{
    const Snapshot s = eval(ch, c);
    if (ch.running) ch.idle_done = ch.done || c - ch.ref >= ch.start;  // modes 0, 4: terminal count reached
    ch.idle_ce = s.ce;
    ch.idle_out = forced_out.value_or(s.out);
    ch.running = false;
}

// ---- Time ----

uint64_t Pit8254::advance(uint64_t now_ns)
{
    const uint64_t c = std::max(to_clk(now_ns), last_clk_);
    sync(c);
    return c;
}

void Pit8254::sync(uint64_t c)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < kChannels; ++i) {
        Channel& ch = ch_[i];
        uint64_t a = last_clk_;
        if (ch.load_pending && ch.load_clk <= c) {
            if (i == 0) n += segment_edges(ch, a, ch.load_clk);
            a = ch.load_clk;
            apply_load(ch);
        }
        if (i == 0) n += segment_edges(ch, a, c);
    }
    last_clk_ = c;
    ticks(n);
}

void Pit8254::ticks(uint64_t n)
{
    if (n == 0) return;
    stats_.ticks += n;
    if (policy_ == PitPolicy::kDiscard) {
        stats_.coalesced_ticks += n - 1;
        pulse();
        return;
    }
    pending_ += n;
    if (!in_flight_) {
        --pending_;
        in_flight_ = true;
        pulse();
    }
    if (pending_ > kMaxPendingTicks) {
        stats_.dropped_ticks += pending_ - kMaxPendingTicks;
        pending_ = kMaxPendingTicks;
    }
}

void Pit8254::pulse()
{
    ++stats_.irqs;
    if (!irq0_) return;
    outbox_.push(true);
    outbox_.push(false);
}

void Pit8254::deliver(std::unique_lock<std::mutex>& lock)
{
    outbox_.drain(lock, [this](bool level) { irq0_(level); });
}

// ---- Registers ----

uint32_t Pit8254::count_value(Channel& ch, uint16_t raw)
{
    uint32_t n;
    if (ch.bcd) {
        n = 0;
        for (int shift = 12; shift >= 0; shift -= 4) {
            const uint32_t digit = (raw >> shift) & 0xf;
            if (digit > 9) ++stats_.odd_writes;
            n = n * 10 + digit;
        }
        n %= kBcdModulus;
        if (n == 0) n = kBcdModulus;
    } else {
        n = raw == 0 ? kBinaryModulus : raw;
    }
    return n;
}

uint16_t Pit8254::readback_value(const Channel& ch, uint32_t ce) const
{
    if (!ch.bcd) return static_cast<uint16_t>(ce);
    ce %= kBcdModulus;
    return static_cast<uint16_t>((ce / 1000) << 12 | (ce / 100 % 10) << 8 | (ce / 10 % 10) << 4 | (ce % 10));
}

void Pit8254::latch_count(Channel& ch, uint64_t c)
{
    if (ch.count_latched) return;  // a second latch before the read is ignored
    ch.latched_count = readback_value(ch, eval(ch, c).ce);
    ch.count_latched = true;
}

void Pit8254::latch_status(Channel& ch, uint64_t c)
{
    if (ch.status_latched) return;
    ch.latched_status = static_cast<uint8_t>((eval(ch, c).out ? kStatusOut : 0) |
                                             (ch.null_count ? kStatusNullCount : 0) | ch.control);
    ch.status_latched = true;
}

void Pit8254::write_control(uint8_t value, uint64_t c)
{
    const unsigned sc = value >> kScShift;
    if (sc == kScReadBack) {
        if (value & kRbReserved) ++stats_.odd_writes;
        for (unsigned i = 0; i < kChannels; ++i) {
            if (!(value & (1u << (kRbCnt0Shift + i)))) continue;
            if (!(value & kRbNoCount)) latch_count(ch_[i], c);
            if (!(value & kRbNoStatus)) latch_status(ch_[i], c);
        }
        return;
    }
    Channel& ch = ch_[sc];
    const unsigned rw = (value >> kRwShift) & kRwMask;
    if (rw == kRwLatch) {
        latch_count(ch, c);
        return;
    }
    const Snapshot before = eval(ch, c);
    const unsigned mode = (value >> kModeShift) & kModeMask;
    ch.control = value & kControlBits;
    ch.access = static_cast<uint8_t>(rw);
    ch.mode = static_cast<uint8_t>(mode >= 6 ? mode - 4 : mode);
    ch.bcd = value & kBcd;
    // "When a Control Word is written to a Counter, all Control Logic is
    // immediately reset and OUT goes to a known initial state": low in mode
    // 0, high in the others. The CE keeps its (now meaningless) value.
    ch.write_msb_next = false;
    ch.read_msb_next = false;
    ch.count_latched = false;
    ch.status_latched = false;
    ch.have_count = false;
    ch.null_count = true;
    ch.running = false;
    ch.suspended = false;
    ch.load_pending = false;
    ch.idle_ce = before.ce % modulus(ch);
    ch.idle_out = ch.mode != 0;
    ch.idle_done = false;
    if (sc == 0) {
        pending_ = 0;
        in_flight_ = false;
    }
}

// A whole count was written ("Mode Definitions", what a new count does in
// each mode).
void Pit8254::write_count(Channel& ch, uint16_t raw, uint64_t c)
{
    const uint32_t n = count_value(ch, raw);
    if (ch.mode == 2 && n == 1) ++stats_.odd_writes;  // "a COUNT of 1 is illegal in Mode 2"
    ch.cr = n;
    ch.have_count = true;
    ch.null_count = true;
    auto load_at = [&ch, n](uint64_t clk, uint32_t offset) {
        ch.load_pending = true;
        ch.load_clk = clk;
        ch.load_value = n;
        ch.load_offset = offset;
    };
    switch (ch.mode) {
    case 0:  // OUT low at once, counting restarts from the new count
        freeze(ch, c, false);
        ch.suspended = false;
        load_at(c + 1, 0);
        break;
    case 4:  // the new count is loaded on the next pulse
        load_at(c + 1, 0);
        break;
    case 1:
    case 5:  // used at the next trigger
        break;
    case 2:
    case 3:
    default:
        if (!ch.running) {
            load_at(c + 1, 0);
        } else if (ch.mode == 2) {
            // At the end of the current period.
            const uint64_t d = c - ch.ref;
            load_at(ch.ref + (d / ch.period + 1) * ch.period, 0);
        } else {
            // At the end of the current half-cycle; after a high half the new
            // count starts with its low half.
            const uint32_t p = static_cast<uint32_t>((c - ch.ref + ch.offset) % ch.period);
            const uint32_t half = (ch.period + 1) / 2;
            if (p < half)
                load_at(c + (half - p), (n + 1) / 2);
            else
                load_at(c + (ch.period - p), 0);
        }
        break;
    }
}

// "Operations Common to All Modes", GATE: modes 0, 4 count while it is high;
// modes 1, 5 start on its rising edge; modes 2, 3 stop with OUT high while it
// is low and reload on its rising edge.
void Pit8254::gate_locked(Channel& ch, bool level, uint64_t c)
{
    if (ch.gate == level) return;
    ch.gate = level;
    switch (ch.mode) {
    case 0:
    case 4:
        if (!level) {
            if (ch.running) {
                freeze(ch, c, std::nullopt);
                ch.suspended = true;
            }
        } else if (ch.suspended) {
            ch.running = true;
            ch.suspended = false;
            ch.ref = c;  // decrements again from the next pulse
            ch.start = ch.idle_ce ? ch.idle_ce : modulus(ch);
            ch.done = ch.idle_done;
        }
        break;
    case 1:
    case 5:
        if (level && ch.have_count) {
            ch.load_pending = true;
            ch.load_clk = c + 1;
            ch.load_value = ch.cr;
            ch.load_offset = 0;
        }
        break;
    case 2:
    case 3:
    default:
        if (!level) {
            if (ch.running) freeze(ch, c, true);
            ch.idle_out = true;
            ch.load_pending = false;
        } else if (ch.have_count) {
            ch.load_pending = true;
            ch.load_clk = c + 1;
            ch.load_value = ch.cr;
            ch.load_offset = 0;
        }
        break;
    }
}

uint8_t Pit8254::read_locked(uint16_t port, uint64_t c)
{
    if (port >= kBase && port < kBase + kChannels) {
        Channel& ch = ch_[port - kBase];
        // "If both count and status are latched, the first read returns the
        // status, the next one or two the count."
        if (ch.status_latched) {
            ch.status_latched = false;
            return ch.latched_status;
        }
        const uint16_t v = ch.count_latched ? ch.latched_count : readback_value(ch, eval(ch, c).ce);
        uint8_t byte;
        switch (ch.access) {
        case kRwLsb:
            byte = static_cast<uint8_t>(v);
            ch.count_latched = false;
            break;
        case kRwMsb:
            byte = static_cast<uint8_t>(v >> 8);
            ch.count_latched = false;
            break;
        case kRwBoth:
        default:
            if (!ch.read_msb_next) {
                byte = static_cast<uint8_t>(v);
                ch.read_msb_next = true;
            } else {
                byte = static_cast<uint8_t>(v >> 8);
                ch.read_msb_next = false;
                ch.count_latched = false;
            }
            break;
        }
        return byte;
    }
    if (port == kBase + 3) {
        ++stats_.control_reads;
        return kControlPortRead;
    }
    if (port == kPortB) {
        const bool refresh = (c / kRefreshHalfPeriodClk) & 1;
        return static_cast<uint8_t>((port_b_ & kPortBWritable) | (refresh ? kPortBRefresh : 0) |
                                    (eval(ch_[2], c).out ? kPortBOut2 : 0));
    }
    return 0xff;
}

void Pit8254::write_locked(uint16_t port, uint8_t value, uint64_t c)
{
    if (port >= kBase && port < kBase + kChannels) {
        Channel& ch = ch_[port - kBase];
        switch (ch.access) {
        case kRwLsb:
            write_count(ch, value, c);
            break;
        case kRwMsb:
            write_count(ch, static_cast<uint16_t>(value << 8), c);
            break;
        case kRwBoth:
        default:
            if (!ch.write_msb_next) {
                ch.write_lsb = value;
                ch.write_msb_next = true;
                // Mode 0: "writing the first byte disables counting, OUT is
                // set low immediately".
                if (ch.mode == 0) {
                    freeze(ch, c, false);
                    ch.suspended = false;
                    ch.load_pending = false;
                }
            } else {
                ch.write_msb_next = false;
                write_count(ch, static_cast<uint16_t>(ch.write_lsb | value << 8), c);
            }
            break;
        }
        return;
    }
    if (port == kBase + 3) {
        write_control(value, c);
        return;
    }
    if (port == kPortB) {
        port_b_ = value & kPortBWritable;
        gate_locked(ch_[2], value & kPortBGate2, c);
    }
}

// ---- Public entry points ----

uint8_t Pit8254::read_port(uint16_t port, uint64_t now_ns)
{
    std::unique_lock lock(mutex_);
    const uint8_t v = read_locked(port, advance(now_ns));
    deliver(lock);
    return v;
}

void Pit8254::write_port(uint16_t port, uint8_t value, uint64_t now_ns)
{
    std::unique_lock lock(mutex_);
    write_locked(port, value, advance(now_ns));
    deliver(lock);
}

void Pit8254::set_gate(unsigned channel, bool level, uint64_t now_ns)
{
    if (channel >= kChannels) return;
    std::unique_lock lock(mutex_);
    const uint64_t c = advance(now_ns);
    gate_locked(ch_[channel], level, c);
    if (channel == 2) port_b_ = static_cast<uint8_t>((port_b_ & ~kPortBGate2) | (level ? kPortBGate2 : 0));
    deliver(lock);
}

bool Pit8254::out(unsigned channel, uint64_t now_ns)
{
    if (channel >= kChannels) return false;
    std::unique_lock lock(mutex_);
    const bool level = eval(ch_[channel], advance(now_ns)).out;
    deliver(lock);
    return level;
}

std::optional<uint64_t> Pit8254::next_event_ns() const
{
    std::lock_guard lock(mutex_);
    const Channel& ch = ch_[0];
    std::optional<uint64_t> edge = segment_next_edge(ch, last_clk_);
    if (ch.load_pending && (!edge || *edge > ch.load_clk)) {
        Channel loaded = ch;
        apply_load(loaded);
        edge = segment_next_edge(loaded, ch.load_clk);
    }
    if (!edge) return std::nullopt;
    return to_ns(*edge);
}

void Pit8254::on_timer(uint64_t now_ns)
{
    std::unique_lock lock(mutex_);
    advance(now_ns);
    deliver(lock);
}

void Pit8254::ack_irq()
{
    std::unique_lock lock(mutex_);
    ++stats_.acks;
    if (policy_ == PitPolicy::kReinject) {
        in_flight_ = false;
        if (pending_ > 0) {
            --pending_;
            in_flight_ = true;
            pulse();
        }
    }
    deliver(lock);
}

uint64_t Pit8254::pending_ticks() const
{
    std::lock_guard lock(mutex_);
    return pending_;
}

PitPolicy Pit8254::policy() const
{
    std::lock_guard lock(mutex_);
    return policy_;
}

void Pit8254::set_policy(PitPolicy policy)
{
    std::lock_guard lock(mutex_);
    policy_ = policy;
    pending_ = 0;
    in_flight_ = false;
}

PitStats Pit8254::stats() const
{
    std::lock_guard lock(mutex_);
    return stats_;
}

void Pit8254::attach(Bus& pio, const std::function<void()>& after_write)
{
    pio.add(kBase, kPorts, timer_dev_, "8254 PIT", after_write);
    pio.add(kPortB, 1, port_b_dev_, "port 0x61 (PIT gate 2, speaker)", after_write);
}

void Pit8254::PortDevice::read(uint64_t offset, std::span<uint8_t> data)
{
    const uint64_t now = pit_.clock_();
    for (size_t i = 0; i < data.size(); ++i) data[i] = pit_.read_port(static_cast<uint16_t>(base_ + offset + i), now);
}

void Pit8254::PortDevice::write(uint64_t offset, std::span<const uint8_t> data)
{
    const uint64_t now = pit_.clock_();
    for (size_t i = 0; i < data.size(); ++i) pit_.write_port(static_cast<uint16_t>(base_ + offset + i), data[i], now);
}

}  // namespace kvmini
