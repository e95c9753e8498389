// Pit8254 against the Intel 8254 datasheet. Times are given in CLK pulses of
// the 1.193182 MHz input: at(k) is the first nanosecond at which pulse
// base+k has happened. A count written at at(0) is loaded on pulse base+1.
#include "irqchip/models/pit_8254.h"

#include <gtest/gtest.h>

#include <vector>

#include "devices/bus.h"

namespace kvmini {
namespace {

constexpr uint64_t kHz = 1'193'182;
constexpr uint64_t kBase = 36 * 1000;  // a multiple of 36: the refresh bit is 0 here

uint64_t at(uint64_t k)
{
    const uint64_t pulse = kBase + k;
    return (pulse * 1'000'000'000ull + kHz - 1) / kHz;
}

// Control words (Figure 7): SC1 SC0 RW1 RW0 M2 M1 M0 BCD.
constexpr uint8_t cw(unsigned sc, unsigned rw, unsigned mode, bool bcd = false)
{
    return static_cast<uint8_t>(sc << 6 | rw << 4 | mode << 1 | (bcd ? 1 : 0));
}

struct Pulses {
    std::vector<bool> levels;
    Pit8254::IrqCallback callback()
    {
        return [this](bool level) { levels.push_back(level); };
    }
    size_t rising() const
    {
        size_t n = 0;
        for (bool l : levels) n += l ? 1 : 0;
        return n;
    }
};

void load(Pit8254& pit, unsigned channel, uint8_t control, uint16_t count, uint64_t when = at(0))
{
    pit.write_port(0x43, control, when);
    pit.write_port(static_cast<uint16_t>(0x40 + channel), static_cast<uint8_t>(count), when);
    pit.write_port(static_cast<uint16_t>(0x40 + channel), static_cast<uint8_t>(count >> 8), when);
}

// Counter latch command, then LSB and MSB.
uint16_t latched_count(Pit8254& pit, unsigned channel, uint64_t when)
{
    pit.write_port(0x43, static_cast<uint8_t>(channel << 6), when);
    const uint8_t lo = pit.read_port(static_cast<uint16_t>(0x40 + channel), when);
    const uint8_t hi = pit.read_port(static_cast<uint16_t>(0x40 + channel), when);
    return static_cast<uint16_t>(lo | hi << 8);
}

TEST(Pit8254, Mode0OutLowUntilTerminalCountNPlusOnePulsesAfterTheWrite)
{
    Pulses irq;
    Pit8254 pit(irq.callback());
    pit.write_port(0x43, cw(0, 3, 0), at(0));
    EXPECT_FALSE(pit.out(0, at(0)));  // mode 0: OUT low after the control word
    pit.write_port(0x40, 100, at(0));
    pit.write_port(0x40, 0, at(0));
    EXPECT_EQ(pit.next_event_ns(), at(101));
    EXPECT_EQ(latched_count(pit, 0, at(1)), 100);  // loaded on the next pulse
    EXPECT_EQ(latched_count(pit, 0, at(51)), 50);
    EXPECT_FALSE(pit.out(0, at(100)));
    EXPECT_TRUE(pit.out(0, at(101)));
    EXPECT_EQ(latched_count(pit, 0, at(101)), 0);
    EXPECT_EQ(latched_count(pit, 0, at(102)), 0xffff);  // keeps counting, OUT stays high
    EXPECT_TRUE(pit.out(0, at(5000)));
    EXPECT_EQ(irq.levels, (std::vector<bool>{true, false}));  // one tick
    EXPECT_EQ(pit.next_event_ns(), std::nullopt);
}

TEST(Pit8254, Mode0FirstByteStopsCountingAndSecondReloads)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 0), 1000);
    EXPECT_EQ(latched_count(pit, 0, at(500)), 501);
    pit.write_port(0x40, 0x10, at(500));  // LSB of a new count
    EXPECT_FALSE(pit.out(0, at(600)));
    EXPECT_EQ(latched_count(pit, 0, at(600)), 501);  // disabled
    EXPECT_EQ(latched_count(pit, 0, at(700)), 501);
    pit.write_port(0x40, 0x00, at(800));  // MSB: count 16, loaded on 801
    EXPECT_EQ(latched_count(pit, 0, at(801)), 16);
    EXPECT_FALSE(pit.out(0, at(816)));
    EXPECT_TRUE(pit.out(0, at(817)));
}

TEST(Pit8254, Mode0NewCountRestartsAndPullsOutLow)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 0), 10);
    EXPECT_TRUE(pit.out(0, at(20)));
    load(pit, 0, cw(0, 3, 0), 10, at(30));
    EXPECT_FALSE(pit.out(0, at(30)));
    EXPECT_TRUE(pit.out(0, at(41)));
}

TEST(Pit8254, Mode2RateGeneratorOutLowForOnePulseEachPeriod)
{
    Pulses irq;
    Pit8254 pit(irq.callback());
    load(pit, 0, cw(0, 3, 2), 10);
    EXPECT_TRUE(pit.out(0, at(0)));  // mode 2: OUT high after the control word
    EXPECT_EQ(latched_count(pit, 0, at(1)), 10);
    EXPECT_EQ(latched_count(pit, 0, at(9)), 2);
    EXPECT_TRUE(pit.out(0, at(9)));
    EXPECT_EQ(latched_count(pit, 0, at(10)), 1);
    EXPECT_FALSE(pit.out(0, at(10)));  // CE = 1: OUT low one pulse
    EXPECT_EQ(latched_count(pit, 0, at(11)), 10);
    EXPECT_TRUE(pit.out(0, at(11)));   // reloaded: high, a tick
    EXPECT_FALSE(pit.out(0, at(20)));
    EXPECT_TRUE(pit.out(0, at(21)));
    EXPECT_EQ(irq.rising(), 1u);  // reinject: the second waits for an ack
    EXPECT_EQ(pit.pending_ticks(), 1u);
    EXPECT_EQ(pit.next_event_ns(), at(31));
}

TEST(Pit8254, Mode3SquareWaveEvenCount)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 3), 10);
    const bool expected_out[] = {true, true, true, true, true, false, false, false, false, false, true};
    const uint16_t expected_ce[] = {10, 8, 6, 4, 2, 10, 8, 6, 4, 2, 10};
    for (uint64_t k = 1; k <= 11; ++k) {
        EXPECT_EQ(pit.out(0, at(k)), expected_out[k - 1]) << "pulse " << k;
        EXPECT_EQ(latched_count(pit, 0, at(k)), expected_ce[k - 1]) << "pulse " << k;
    }
    EXPECT_EQ(pit.next_event_ns(), at(21));
}

TEST(Pit8254, Mode3SquareWaveOddCountIsHighOneLonger)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 3), 5);
    // (N+1)/2 = 3 pulses high, (N-1)/2 = 2 low; N-1 loaded, counted by 2.
    const bool expected_out[] = {true, true, true, false, false, true, true, true, false, false, true};
    const uint16_t expected_ce[] = {4, 2, 0, 4, 2, 4, 2, 0, 4, 2, 4};
    for (uint64_t k = 1; k <= 11; ++k) {
        EXPECT_EQ(pit.out(0, at(k)), expected_out[k - 1]) << "pulse " << k;
        EXPECT_EQ(latched_count(pit, 0, at(k)), expected_ce[k - 1]) << "pulse " << k;
    }
    EXPECT_EQ(pit.stats().ticks, 2u);  // rising edges at pulses 6 and 11
}

TEST(Pit8254, Mode1OneShotStartsOnGateRisingEdgeAndRetriggers)
{
    Pit8254 pit;
    load(pit, 2, cw(2, 3, 1), 5);  // channel 2: gate is port 0x61 bit 0, low
    EXPECT_TRUE(pit.out(2, at(5)));  // no trigger yet
    pit.write_port(0x43, 0xe8, at(5));  // read-back: status of counter 2
    EXPECT_EQ(pit.read_port(0x42, at(5)), 0xf2);  // OUT 1, null count 1, 11 001 0
    pit.write_port(0x61, 0x01, at(10));  // gate rises: loaded on pulse 11
    EXPECT_TRUE(pit.out(2, at(10)));
    EXPECT_FALSE(pit.out(2, at(11)));
    EXPECT_EQ(pit.read_port(0x61, at(12)) & 0x20, 0x00);  // OUT2 via port 0x61
    EXPECT_FALSE(pit.out(2, at(15)));
    EXPECT_TRUE(pit.out(2, at(16)));
    EXPECT_EQ(pit.read_port(0x61, at(16)) & 0x20, 0x20);
    pit.write_port(0x61, 0x00, at(20));
    pit.write_port(0x61, 0x01, at(21));  // retrigger
    EXPECT_FALSE(pit.out(2, at(22)));
    EXPECT_FALSE(pit.out(2, at(26)));
    EXPECT_TRUE(pit.out(2, at(27)));
}

TEST(Pit8254, Mode4SoftwareStrobeLowForOnePulse)
{
    Pulses irq;
    Pit8254 pit(irq.callback());
    load(pit, 0, cw(0, 3, 4), 4);
    EXPECT_EQ(pit.next_event_ns(), at(6));
    EXPECT_TRUE(pit.out(0, at(4)));
    EXPECT_FALSE(pit.out(0, at(5)));  // N+1 pulses after the write
    EXPECT_TRUE(pit.out(0, at(6)));
    EXPECT_TRUE(pit.out(0, at(100)));
    EXPECT_EQ(irq.rising(), 1u);
}

TEST(Pit8254, Mode5HardwareStrobeStartsOnGate)
{
    Pit8254 pit;
    load(pit, 2, cw(2, 3, 5), 3);
    EXPECT_TRUE(pit.out(2, at(5)));
    pit.set_gate(2, true, at(10));
    EXPECT_EQ(pit.read_port(0x61, at(10)) & 0x01, 0x01);  // the gate shows in port 0x61
    EXPECT_TRUE(pit.out(2, at(13)));
    EXPECT_FALSE(pit.out(2, at(14)));
    EXPECT_TRUE(pit.out(2, at(15)));
}

TEST(Pit8254, Mode0GateLowSuspendsCounting)
{
    Pit8254 pit;
    pit.write_port(0x61, 0x01, at(0));
    load(pit, 2, cw(2, 3, 0), 10);
    pit.write_port(0x61, 0x00, at(5));
    EXPECT_EQ(latched_count(pit, 2, at(5)), 6);
    EXPECT_EQ(latched_count(pit, 2, at(50)), 6);
    EXPECT_FALSE(pit.out(2, at(50)));
    pit.write_port(0x61, 0x01, at(50));
    EXPECT_EQ(latched_count(pit, 2, at(51)), 5);
    EXPECT_FALSE(pit.out(2, at(55)));
    EXPECT_TRUE(pit.out(2, at(56)));
}

TEST(Pit8254, Mode2GateLowForcesOutHighAndRisingGateReloads)
{
    Pit8254 pit;
    pit.write_port(0x61, 0x01, at(0));
    load(pit, 2, cw(2, 3, 2), 4);
    EXPECT_FALSE(pit.out(2, at(4)));
    pit.write_port(0x61, 0x00, at(4));
    EXPECT_TRUE(pit.out(2, at(4)));  // at once, no pulse needed
    EXPECT_TRUE(pit.out(2, at(9)));
    pit.write_port(0x61, 0x01, at(10));
    EXPECT_EQ(latched_count(pit, 2, at(11)), 4);
    EXPECT_TRUE(pit.out(2, at(13)));
    EXPECT_FALSE(pit.out(2, at(14)));
}

TEST(Pit8254, BcdCounting)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 0, true), 0x0100);  // BCD 100
    EXPECT_EQ(latched_count(pit, 0, at(1)), 0x0100);
    EXPECT_EQ(latched_count(pit, 0, at(2)), 0x0099);
    EXPECT_EQ(latched_count(pit, 0, at(90)), 0x0011);
    EXPECT_FALSE(pit.out(0, at(100)));
    EXPECT_TRUE(pit.out(0, at(101)));
    EXPECT_EQ(latched_count(pit, 0, at(102)), 0x9999);
}

TEST(Pit8254, CountOfZeroIsTheMaximum)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 2, true), 0);  // BCD: 10^4
    load(pit, 1, cw(1, 3, 2), 0);        // binary: 2^16
    EXPECT_EQ(latched_count(pit, 0, at(1)), 0x0000);
    EXPECT_EQ(latched_count(pit, 0, at(2)), 0x9999);
    EXPECT_EQ(pit.next_event_ns(), at(10001));
    EXPECT_EQ(latched_count(pit, 1, at(2)), 0xffff);
    EXPECT_FALSE(pit.out(1, at(65536)));
    EXPECT_TRUE(pit.out(1, at(65537)));
}

TEST(Pit8254, BadBcdDigitsAreCounted)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 0, true), 0x00a0);
    EXPECT_EQ(pit.stats().odd_writes, 1u);
}

TEST(Pit8254, CounterLatchHoldsTheValueUntilRead)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 2), 1000);
    pit.write_port(0x43, 0x00, at(100));  // latch: CE = 901 = 0x385
    pit.write_port(0x43, 0x00, at(200));  // ignored: already latched
    EXPECT_EQ(pit.read_port(0x40, at(500)), 0x85);
    EXPECT_EQ(pit.read_port(0x40, at(600)), 0x03);
    // Released: reads follow the counter again. Time never goes back: a read
    // "at 300" after one at 600 sees pulse 600, 1000 - 599 = 401 = 0x191.
    EXPECT_EQ(pit.read_port(0x40, at(300)), 0x91);
    EXPECT_EQ(pit.read_port(0x40, at(600)), 0x01);
}

TEST(Pit8254, ReadBackLatchesStatusAndCountOfSeveralCounters)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 2), 1000);
    load(pit, 1, cw(1, 3, 2), 500);
    load(pit, 2, cw(2, 3, 0), 7);  // gate low: loaded, not counting
    pit.write_port(0x43, 0xe2, at(0));  // status of counter 0, before the load
    EXPECT_EQ(pit.read_port(0x40, at(0)), 0xf4);  // OUT 1, null count 1, 11 010 0
    pit.write_port(0x43, 0xce, at(20));  // count and status of 0, 1, 2
    EXPECT_EQ(pit.read_port(0x40, at(25)), 0xb4);  // null count cleared by the load
    EXPECT_EQ(pit.read_port(0x40, at(25)), 0xd5);  // 981 = 0x3d5
    EXPECT_EQ(pit.read_port(0x40, at(25)), 0x03);
    EXPECT_EQ(pit.read_port(0x41, at(30)), 0xb4);
    EXPECT_EQ(pit.read_port(0x41, at(30)), 0xe1);  // 481 = 0x1e1
    EXPECT_EQ(pit.read_port(0x41, at(30)), 0x01);
    EXPECT_EQ(pit.read_port(0x42, at(30)), 0x30);  // OUT 0, null count 0, 11 000 0
    EXPECT_EQ(pit.read_port(0x42, at(30)), 0x07);
    EXPECT_EQ(pit.read_port(0x42, at(30)), 0x00);
    pit.write_port(0x43, 0xd2, at(40));  // count only, counter 0: 961
    EXPECT_EQ(pit.read_port(0x40, at(40)), 0xc1);
    EXPECT_EQ(pit.read_port(0x40, at(40)), 0x03);
}

TEST(Pit8254, StatusShowsOutHighAfterMode0TerminalCount)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 0), 3);
    pit.write_port(0x43, 0xe2, at(3));
    EXPECT_EQ(pit.read_port(0x40, at(3)), 0x30);
    pit.write_port(0x43, 0xe2, at(4));
    EXPECT_EQ(pit.read_port(0x40, at(4)), 0xb0);
}

TEST(Pit8254, SecondStatusLatchBeforeTheReadIsIgnored)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 0), 3);
    pit.write_port(0x43, 0xe2, at(3));  // OUT low
    pit.write_port(0x43, 0xe2, at(4));  // OUT high by now: ignored
    EXPECT_EQ(pit.read_port(0x40, at(5)), 0x30);
    EXPECT_EQ(pit.read_port(0x40, at(5)), 0xff);  // then the live count: 3 - 4 = 0xffff
}

TEST(Pit8254, LsbOnlyAndMsbOnlyAccess)
{
    Pit8254 pit;
    pit.write_port(0x43, cw(0, 1, 2), at(0));  // LSB only
    pit.write_port(0x40, 0x20, at(0));
    EXPECT_EQ(pit.read_port(0x40, at(1)), 0x20);
    EXPECT_EQ(pit.read_port(0x40, at(2)), 0x1f);
    EXPECT_EQ(pit.next_event_ns(), at(33));  // period 32
    pit.write_port(0x43, cw(0, 2, 2), at(2));  // MSB only
    pit.write_port(0x40, 0x01, at(2));         // 0x0100 = 256
    EXPECT_EQ(pit.read_port(0x40, at(3)), 0x01);
    EXPECT_EQ(pit.read_port(0x40, at(4)), 0x00);  // 255
    EXPECT_EQ(pit.next_event_ns(), at(259));
}

TEST(Pit8254, ReadsAndWritesOfTwoByteCountsMayInterleave)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 2), 0x1234);
    EXPECT_EQ(pit.read_port(0x40, at(1)), 0x34);  // read LSB
    pit.write_port(0x40, 0x78, at(1));            // write LSB
    EXPECT_EQ(pit.read_port(0x40, at(1)), 0x12);  // read MSB
    pit.write_port(0x40, 0x56, at(1));            // write MSB: 0x5678 next period
    EXPECT_EQ(latched_count(pit, 0, at(0x1234 + 1)), 0x5678);
}

TEST(Pit8254, Mode2NewCountTakesEffectAtTheEndOfThePeriod)
{
    Pulses irq;
    Pit8254 pit(irq.callback(), PitPolicy::kDiscard);
    load(pit, 0, cw(0, 3, 2), 10);
    pit.write_port(0x40, 20, at(5));
    pit.write_port(0x40, 0, at(5));
    pit.write_port(0x43, 0xe2, at(5));
    EXPECT_EQ(pit.read_port(0x40, at(5)) & 0x40, 0x40);  // null count until the reload
    EXPECT_EQ(latched_count(pit, 0, at(10)), 1);          // the old period finishes
    EXPECT_EQ(latched_count(pit, 0, at(11)), 20);
    pit.on_timer(at(11));
    EXPECT_EQ(irq.rising(), 1u);
    EXPECT_EQ(pit.next_event_ns(), at(31));
}

TEST(Pit8254, Mode3NewCountTakesEffectAtTheEndOfTheHalfCycle)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 3), 10);
    pit.write_port(0x40, 6, at(3));  // in the high half
    pit.write_port(0x40, 0, at(3));
    EXPECT_EQ(pit.next_event_ns(), at(9));
    EXPECT_TRUE(pit.out(0, at(5)));
    EXPECT_FALSE(pit.out(0, at(6)));  // the high half ended; the new count's low half
    EXPECT_FALSE(pit.out(0, at(8)));
    EXPECT_TRUE(pit.out(0, at(9)));
    EXPECT_FALSE(pit.out(0, at(12)));
    EXPECT_TRUE(pit.out(0, at(15)));
}

TEST(Pit8254, Mode2CountOfOneIsIllegal)
{
    Pit8254 pit;
    load(pit, 0, cw(0, 3, 2), 1);
    EXPECT_EQ(pit.stats().odd_writes, 1u);
    EXPECT_FALSE(pit.out(0, at(10)));
    EXPECT_EQ(pit.next_event_ns(), std::nullopt);
}

TEST(Pit8254, ControlPortReadsAsFloatingBusAndIsCounted)
{
    Pit8254 pit;
    EXPECT_EQ(pit.read_port(0x43, at(0)), 0xff);
    EXPECT_EQ(pit.stats().control_reads, 1u);
}

TEST(Pit8254, PortBBits)
{
    Pit8254 pit;
    pit.write_port(0x61, 0xf3, at(0));  // bits 4-7 are read-only
    EXPECT_EQ(pit.read_port(0x61, at(0)), 0x23);  // gate, speaker, OUT2 (mode 3 idle: high)
    EXPECT_EQ(pit.read_port(0x61, at(18)), 0x33); // refresh toggles every 18 pulses
    EXPECT_EQ(pit.read_port(0x61, at(36)), 0x23);
}

TEST(Pit8254, ReinjectDeliversEveryTickOnePerAck)
{
    Pulses irq;
    Pit8254 pit(irq.callback(), PitPolicy::kReinject);
    load(pit, 0, cw(0, 3, 2), 100);
    pit.on_timer(at(501));  // five periods late
    EXPECT_EQ(irq.rising(), 1u);
    EXPECT_EQ(pit.pending_ticks(), 4u);
    for (int i = 0; i < 5; ++i) pit.ack_irq();
    EXPECT_EQ(irq.rising(), 5u);
    EXPECT_EQ(pit.pending_ticks(), 0u);
    EXPECT_EQ(irq.levels.size(), 10u);  // each a pulse: true, false
    const PitStats s = pit.stats();
    EXPECT_EQ(s.ticks, 5u);
    EXPECT_EQ(s.irqs, 5u);
    EXPECT_EQ(s.coalesced_ticks, 0u);
    EXPECT_EQ(s.acks, 5u);
}

// A guest that never acknowledges cannot grow the backlog without bound.
TEST(Pit8254, ReinjectBacklogIsCapped)
{
    Pulses irq;
    Pit8254 pit(irq.callback(), PitPolicy::kReinject);
    load(pit, 0, cw(0, 3, 2), 2);         // the shortest mode-2 period: 2 CLKs
    pit.on_timer(at(2 + 2 * 100'000));    // 100,000 periods later
    EXPECT_EQ(irq.rising(), 1u);
    EXPECT_EQ(pit.pending_ticks(), Pit8254::kMaxPendingTicks);
    EXPECT_EQ(pit.stats().dropped_ticks, 100'000u - 1 - Pit8254::kMaxPendingTicks);
}

TEST(Pit8254, DiscardCoalescesLateTicks)
{
    Pulses irq;
    Pit8254 pit(irq.callback(), PitPolicy::kDiscard);
    load(pit, 0, cw(0, 3, 2), 100);
    pit.on_timer(at(501));
    EXPECT_EQ(irq.rising(), 1u);
    pit.ack_irq();
    EXPECT_EQ(irq.rising(), 1u);
    EXPECT_EQ(pit.pending_ticks(), 0u);
    pit.on_timer(at(601));  // on time: one tick, one pulse, even without an ack
    EXPECT_EQ(irq.rising(), 2u);
    const PitStats s = pit.stats();
    EXPECT_EQ(s.ticks, 6u);
    EXPECT_EQ(s.coalesced_ticks, 4u);
}

TEST(Pit8254, TicksOverAWindowWithATimerBackend)
{
    // 1000 Hz from a 1193 count; the backend sleeps until next_event_ns(),
    // acks each tick, but misses the window between 20 and 30 periods.
    for (PitPolicy policy : {PitPolicy::kReinject, PitPolicy::kDiscard}) {
        Pulses irq;
        Pit8254 pit(irq.callback(), policy);
        load(pit, 0, cw(0, 3, 2), 1193);
        for (int i = 0; i < 20; ++i) {
            const auto t = pit.next_event_ns();
            ASSERT_TRUE(t.has_value());
            EXPECT_EQ(*t, at(1 + 1193ull * (i + 1)));
            pit.on_timer(*t);
            pit.ack_irq();
        }
        pit.on_timer(at(1 + 1193ull * 30));  // ten periods at once
        for (int i = 0; i < 20; ++i) pit.ack_irq();
        EXPECT_EQ(pit.stats().ticks, 30u);
        EXPECT_EQ(irq.rising(), policy == PitPolicy::kReinject ? 30u : 21u);
    }
}

TEST(Pit8254, ControlWordDropsPendingTicks)
{
    Pulses irq;
    Pit8254 pit(irq.callback());
    load(pit, 0, cw(0, 3, 2), 100);
    pit.on_timer(at(501));
    EXPECT_EQ(pit.pending_ticks(), 4u);
    pit.write_port(0x43, cw(0, 3, 2), at(501));
    EXPECT_EQ(pit.pending_ticks(), 0u);
    pit.ack_irq();
    EXPECT_EQ(irq.rising(), 1u);
}

TEST(Pit8254, CallbackMayAckAtOnceWithoutDeadlock)
{
    Pit8254* self = nullptr;
    int rises = 0;
    Pit8254 pit([&](bool level) {
        if (level)
            ++rises;
        else
            self->ack_irq();  // the guest EOIs each tick at once
    });
    self = &pit;
    load(pit, 0, cw(0, 3, 2), 100);
    pit.on_timer(at(501));
    EXPECT_EQ(rises, 5);
    EXPECT_EQ(pit.pending_ticks(), 0u);
}

TEST(Pit8254, BusAdaptersUseTheInjectedClock)
{
    uint64_t now = at(0);
    Bus pio("pio");
    Pit8254 pit({}, PitPolicy::kReinject, [&] { return now; });
    pit.attach(pio);
    const uint8_t control[1] = {cw(0, 3, 2)};
    const uint8_t count[2] = {100, 0};
    ASSERT_TRUE(pio.write(0x43, control));
    ASSERT_TRUE(pio.write(0x40, std::span(&count[0], 1)));
    ASSERT_TRUE(pio.write(0x40, std::span(&count[1], 1)));
    now = at(41);
    const uint8_t latch[1] = {0x00};
    ASSERT_TRUE(pio.write(0x43, latch));
    uint8_t lo[1], hi[1];
    ASSERT_TRUE(pio.read(0x40, lo));
    ASSERT_TRUE(pio.read(0x40, hi));
    EXPECT_EQ(lo[0] | hi[0] << 8, 60);
    const uint8_t gate[1] = {0x01};
    ASSERT_TRUE(pio.write(0x61, gate));
    uint8_t b[1];
    ASSERT_TRUE(pio.read(0x61, b));
    EXPECT_EQ(b[0] & 0x01, 0x01);
    EXPECT_GT(Pit8254::monotonic_ns(), 0u);
}

}  // namespace
}  // namespace kvmini
