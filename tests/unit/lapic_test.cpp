// Lapic against the Intel SDM vol. 3A chapter 11 (APIC). Register values are
// written as the SDM's bit patterns (11.5.1 LVT, 11.6.1 ICR, 11.9 SVR,
// 11.12.1.2 x2APIC MSRs), not through the model's constants, so a wrong
// constant in the model shows up here. Time is a plain uint64_t in ns that the
// tests advance by hand; the timer input is the header's 1 GHz bus clock.
#include "irqchip/models/lapic.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <vector>

namespace kvmini {

// gtest prints an ApicMessage through this when an EXPECT_EQ fails (found by
// argument-dependent lookup, hence in kvmini and not in the unnamed namespace).
static void PrintTo(const ApicMessage& m, std::ostream* os)
{
    *os << "{vector 0x" << std::hex << unsigned(m.vector) << " mode " << std::dec << unsigned(m.mode)
        << " dest 0x" << std::hex << m.destination << (m.logical ? " logical" : " physical")
        << (m.level ? " level" : " edge") << (m.assert ? " assert" : " deassert") << " shorthand " << std::dec
        << unsigned(m.shorthand) << " source 0x" << std::hex << m.source_id << "}";
}

namespace {

// Register offsets in the xAPIC page (11.4.1).
constexpr uint32_t kId = 0x20;
constexpr uint32_t kVersion = 0x30;
constexpr uint32_t kTpr = 0x80;
constexpr uint32_t kPpr = 0xa0;
constexpr uint32_t kEoi = 0xb0;
constexpr uint32_t kLdr = 0xd0;
constexpr uint32_t kDfr = 0xe0;
constexpr uint32_t kSvr = 0xf0;
constexpr uint32_t kIsr = 0x100;
constexpr uint32_t kTmr = 0x180;
constexpr uint32_t kIrr = 0x200;
constexpr uint32_t kEsr = 0x280;
constexpr uint32_t kIcrLow = 0x300;
constexpr uint32_t kIcrHigh = 0x310;
constexpr uint32_t kLvtTimer = 0x320;
constexpr uint32_t kLvtThermal = 0x330;
constexpr uint32_t kLvtPmc = 0x340;
constexpr uint32_t kLvtLint0 = 0x350;
constexpr uint32_t kLvtLint1 = 0x360;
constexpr uint32_t kLvtError = 0x370;
constexpr uint32_t kTimerInitial = 0x380;
constexpr uint32_t kTimerCurrent = 0x390;
constexpr uint32_t kTimerDivide = 0x3e0;

// x2APIC MSRs (11.12.1.2).
constexpr uint32_t kMsrId = 0x802;
constexpr uint32_t kMsrVersion = 0x803;
constexpr uint32_t kMsrTpr = 0x808;
constexpr uint32_t kMsrPpr = 0x80a;
constexpr uint32_t kMsrEoi = 0x80b;
constexpr uint32_t kMsrLdr = 0x80d;
constexpr uint32_t kMsrDfr = 0x80e;  // absent in x2APIC mode
constexpr uint32_t kMsrSvr = 0x80f;
constexpr uint32_t kMsrIrr = 0x820;
constexpr uint32_t kMsrEsr = 0x828;
constexpr uint32_t kMsrIcr = 0x830;
constexpr uint32_t kMsrIcr2 = 0x831;  // absent: the ICR is one 64-bit MSR
constexpr uint32_t kMsrSelfIpi = 0x83f;

// IA32_APIC_BASE (11.4.4).
constexpr uint64_t kBsp = 1u << 8;
constexpr uint64_t kExtd = 1u << 10;
constexpr uint64_t kEn = 1u << 11;

// ICR low dword (11.6.1).
constexpr uint32_t kDmFixed = 0u << 8;
constexpr uint32_t kDmLowest = 1u << 8;
constexpr uint32_t kDmNmi = 4u << 8;
constexpr uint32_t kDmInit = 5u << 8;
constexpr uint32_t kDmStartup = 6u << 8;
constexpr uint32_t kDmExtInt = 7u << 8;
constexpr uint32_t kLogical = 1u << 11;
constexpr uint32_t kDelivs = 1u << 12;
constexpr uint32_t kAssert = 1u << 14;
constexpr uint32_t kTrigLevel = 1u << 15;
constexpr uint32_t kShSelf = 1u << 18;
constexpr uint32_t kShAll = 2u << 18;
constexpr uint32_t kShAllButSelf = 3u << 18;

// LVT (11.5.1).
constexpr uint32_t kMasked = 1u << 16;
constexpr uint32_t kPeriodic = 1u << 17;
constexpr uint32_t kTscDeadline = 2u << 17;

// SVR (11.9): bit 8 APIC software enable, bit 12 EOI-broadcast suppression.
constexpr uint32_t kSvrOn = 0x1ff;
constexpr uint32_t kSvrOnNoEoiBroadcast = 0x11ff;

constexpr uint64_t kT0 = 1'000'000;  // the owner's clock when a test starts

void enable(Lapic& a, uint64_t now = 0) { a.write_mmio(kSvr, kSvrOn, now); }

// Bit `v` of a 256-bit IRR/ISR/TMR, through MMIO as a guest reads it.
bool vector_bit(Lapic& a, uint32_t base, uint8_t v)
{
    return a.read_mmio(base + (v / 32) * 0x10, 0) & (1u << (v % 32));
}
bool irr(Lapic& a, uint8_t v) { return vector_bit(a, kIrr, v); }
bool isr(Lapic& a, uint8_t v) { return vector_bit(a, kIsr, v); }
bool tmr(Lapic& a, uint8_t v) { return vector_bit(a, kTmr, v); }

bool all_zero(Lapic& a, uint32_t base)
{
    for (uint32_t i = 0; i < 8; ++i)
        if (a.read_mmio(base + i * 0x10, 0) != 0) return false;
    return true;
}

bool x2_irr(Lapic& a, uint8_t v)
{
    uint64_t value = 0;
    EXPECT_TRUE(a.read_msr(kMsrIrr + v / 32, value, 0));
    return value & (1u << (v % 32));
}

// 11.5.3: write the ESR first, then read it.
uint32_t read_esr(Lapic& a)
{
    a.write_mmio(kEsr, 0, 0);
    return a.read_mmio(kEsr, 0);
}

uint64_t x2_read_esr(Lapic& a)
{
    uint64_t value = ~0ull;
    EXPECT_TRUE(a.write_msr(kMsrEsr, 0, 0));
    EXPECT_TRUE(a.read_msr(kMsrEsr, value, 0));
    return value;
}

// xAPIC IPI: destination in ICR high, then the low dword sends (11.6.1).
void send_icr(Lapic& a, uint32_t high, uint32_t low)
{
    a.write_mmio(kIcrHigh, high, 0);
    a.write_mmio(kIcrLow, low, 0);
}

ApicMessage fixed(uint8_t vector, bool level = false)
{
    ApicMessage m;
    m.vector = vector;
    m.level = level;
    return m;
}

ApicMessage of_mode(ApicDeliveryMode mode, uint8_t vector = 0)
{
    ApicMessage m;
    m.mode = mode;
    m.vector = vector;
    return m;
}

// What the owner does with take_outputs() on a one-CPU bus.
void drain_to_self(Lapic& a)
{
    const LapicOutputs out = a.take_outputs();
    for (const ApicMessage& m : out.ipis)
        for (unsigned idx : route_apic_message({&a}, m)) {
            EXPECT_EQ(idx, 0u);
            a.accept(m);
        }
}

std::vector<unsigned> sorted(std::vector<unsigned> v)
{
    std::sort(v.begin(), v.end());
    return v;
}

void enter_x2apic(Lapic& a, bool bsp = true) { a.set_apic_base(0xfee0'0000 | kEn | kExtd | (bsp ? kBsp : 0)); }

// ---------------------------------------------------------------------------
// 11.4.4, 11.4.7.1, 11.4.8: power-on state.

TEST(Lapic, PowerOnRegistersAreTheSdmResetValues)
{
    Lapic a(3, true);
    EXPECT_EQ(a.read_mmio(kId, 0), 0x03000000u);  // xAPIC ID in bits 31:24
    EXPECT_EQ(a.read_mmio(kVersion, 0), 0x01050014u);  // version 14H, max LVT 5, EOI-broadcast suppression
    EXPECT_EQ(a.read_mmio(kTpr, 0), 0u);
    EXPECT_EQ(a.read_mmio(kPpr, 0), 0u);
    EXPECT_EQ(a.read_mmio(kLdr, 0), 0u);
    EXPECT_EQ(a.read_mmio(kDfr, 0), 0xffffffffu);
    EXPECT_EQ(a.read_mmio(kSvr, 0), 0x000000ffu);
    EXPECT_TRUE(all_zero(a, kIsr));
    EXPECT_TRUE(all_zero(a, kTmr));
    EXPECT_TRUE(all_zero(a, kIrr));
    EXPECT_EQ(a.read_mmio(kIcrLow, 0), 0u);
    EXPECT_EQ(a.read_mmio(kIcrHigh, 0), 0u);
    for (uint32_t lvt : {kLvtTimer, kLvtThermal, kLvtPmc, kLvtLint0, kLvtLint1, kLvtError})
        EXPECT_EQ(a.read_mmio(lvt, 0), 0x00010000u) << "LVT at 0x" << std::hex << lvt;
    EXPECT_EQ(a.read_mmio(kTimerInitial, 0), 0u);
    EXPECT_EQ(a.read_mmio(kTimerCurrent, 0), 0u);
    EXPECT_EQ(a.read_mmio(kTimerDivide, 0), 0u);
    EXPECT_EQ(read_esr(a), 0u);
    EXPECT_FALSE(a.software_enabled());
    EXPECT_TRUE(a.hardware_enabled());
    EXPECT_FALSE(a.x2apic_mode());
    EXPECT_FALSE(a.pending_vector().has_value());
    EXPECT_FALSE(a.next_timer_ns().has_value());
    EXPECT_EQ(a.id(), 3u);
}

TEST(Lapic, ApicBaseDefaultsForBspAndAp)
{
    Lapic bsp(0, true), ap(1, false);
    EXPECT_EQ(bsp.apic_base(), 0xfee00900u);  // base FEE00000H, EN (bit 11), BSP (bit 8)
    EXPECT_EQ(ap.apic_base(), 0xfee00800u);
    EXPECT_EQ(bsp.mmio_base(), 0xfee00000u);
    EXPECT_EQ(ap.mmio_base(), 0xfee00000u);
}

TEST(Lapic, ApicBaseRelocatesTheMmioPage)
{
    Lapic a(0, true);
    a.set_apic_base(0xfed00000 | kEn | kBsp);
    EXPECT_EQ(a.apic_base(), 0xfed00900u);
    EXPECT_EQ(a.mmio_base(), 0xfed00000u);
    EXPECT_TRUE(a.hardware_enabled());
}

TEST(Lapic, XapicIdIsTheLowByteOfTheX2apicId)
{
    // 11.12.5.1: the lowest 8 bits of the x2APIC ID are the xAPIC ID, in bits 31:24.
    Lapic a(0x123, false);
    EXPECT_EQ(a.read_mmio(kId, 0), 0x23000000u);
}

TEST(Lapic, DfrBits27To0AreReservedOnes)
{
    // 11.6.2.2 DFR: only the model field (31:28) is writable; 27:0 read as 1s.
    Lapic a(0, true);
    a.write_mmio(kDfr, 0x00000000, 0);
    EXPECT_EQ(a.read_mmio(kDfr, 0), 0x0fffffffu);
    a.write_mmio(kDfr, 0xf0000000, 0);
    EXPECT_EQ(a.read_mmio(kDfr, 0), 0xffffffffu);
}

TEST(Lapic, LvtReservedBitsReadZero)
{
    // 11.5.1 LVT layout: LINT0/1 have vector, delivery mode, polarity (13), trigger
    // (15), mask; delivery status (12) and remote IRR (14) are read-only and
    // idle here; the error entry has vector and mask only; the timer vector,
    // mask and mode (18:17).
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kLvtLint0, 0xffffffff, 0);
    EXPECT_EQ(a.read_mmio(kLvtLint0, 0), 0x0001a7ffu);
    a.write_mmio(kLvtLint1, 0xffffffff, 0);
    EXPECT_EQ(a.read_mmio(kLvtLint1, 0), 0x0001a7ffu);
    a.write_mmio(kLvtError, 0xffffffff, 0);
    EXPECT_EQ(a.read_mmio(kLvtError, 0), 0x000100ffu);
    a.write_mmio(kLvtTimer, 0xfff9ffff, 0);  // mode 00: one-shot
    EXPECT_EQ(a.read_mmio(kLvtTimer, 0), 0x000100ffu);
}

TEST(Lapic, IcrHighKeepsOnlyTheDestinationField)
{
    // 11.6.1 ICR layout: bits 55:32 reserved; xAPIC destination in 63:56.
    Lapic a(0, true);
    a.write_mmio(kIcrHigh, 0x02ffffff, 0);
    EXPECT_EQ(a.read_mmio(kIcrHigh, 0), 0x02000000u);
}

TEST(Lapic, VersionRegisterIsReadOnly)
{
    Lapic a(0, true);
    a.write_mmio(kVersion, 0, 0);
    EXPECT_EQ(a.read_mmio(kVersion, 0), 0x01050014u);
}

// ---------------------------------------------------------------------------
// 11.8.3.1 / 11.8.3.2: TPR, PPR, CR8.

TEST(Lapic, PprFollowsTprWhenNothingIsInService)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kTpr, 0x45, 0);
    EXPECT_EQ(a.read_mmio(kTpr, 0), 0x45u);
    EXPECT_EQ(a.tpr(), 0x45);
    EXPECT_EQ(a.read_mmio(kPpr, 0), 0x45u) << "ISRV = 0: PPR = TPR (all 8 bits)";
    EXPECT_EQ(a.ppr(), 0x45);
    a.write_mmio(kTpr, 0x1ff, 0);  // bits 31:8 reserved
    EXPECT_EQ(a.read_mmio(kTpr, 0), 0xffu);
}

TEST(Lapic, PprIsIsrClassWhenItIsAboveTheTprClass)
{
    Lapic a(0, true);
    enable(a);
    a.accept(fixed(0x61));
    ASSERT_EQ(a.acknowledge(), 0x61);
    a.write_mmio(kTpr, 0x45, 0);
    EXPECT_EQ(a.read_mmio(kPpr, 0), 0x60u) << "TPR[7:4] 4 < ISRV[7:4] 6: PPR = ISRV & F0H";
    a.write_mmio(kTpr, 0x65, 0);
    EXPECT_EQ(a.read_mmio(kPpr, 0), 0x65u) << "TPR[7:4] == ISRV[7:4]: PPR = TPR";
    a.write_mmio(kTpr, 0x7a, 0);
    EXPECT_EQ(a.read_mmio(kPpr, 0), 0x7au);
    a.write_mmio(kTpr, 0x00, 0);
    EXPECT_EQ(a.read_mmio(kPpr, 0), 0x60u);
    a.write_mmio(kEoi, 0, 0);
    EXPECT_EQ(a.read_mmio(kPpr, 0), 0x00u);
}

TEST(Lapic, PendingVectorMustBeAboveThePprClass)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kTpr, 0x50, 0);
    a.accept(fixed(0x5f));
    EXPECT_TRUE(irr(a, 0x5f));
    EXPECT_FALSE(a.pending_vector().has_value()) << "class 5 is not above PPR class 5";
    a.accept(fixed(0x61));
    ASSERT_TRUE(a.pending_vector().has_value());
    EXPECT_EQ(*a.pending_vector(), 0x61);
    a.write_mmio(kTpr, 0x70, 0);
    EXPECT_FALSE(a.pending_vector().has_value());
    a.write_mmio(kTpr, 0x00, 0);
    EXPECT_EQ(a.pending_vector().value_or(0), 0x61) << "the highest IRR vector comes first";
}

TEST(Lapic, Cr8IsTprBits7To4)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kTpr, 0x5a, 0);
    EXPECT_EQ(a.cr8(), 0x5);
    a.set_cr8(0x9);
    EXPECT_EQ(a.read_mmio(kTpr, 0) & 0xf0u, 0x90u);
    EXPECT_EQ(a.tpr() >> 4, 0x9);
    EXPECT_EQ(a.cr8(), 0x9);
    a.accept(fixed(0x95));
    EXPECT_FALSE(a.pending_vector().has_value()) << "CR8 9 blocks class 9";
    a.accept(fixed(0xa5));
    EXPECT_EQ(a.pending_vector().value_or(0), 0xa5);
    a.set_cr8(0);
    EXPECT_EQ(a.read_mmio(kTpr, 0) & 0xf0u, 0u);
}

// ---------------------------------------------------------------------------
// 11.8.3, 11.8.4, 11.8.5: acceptance, acknowledge, EOI.

TEST(Lapic, EdgeFixedSetsIrrAndClearsTmr)
{
    Lapic a(0, true);
    enable(a);
    a.accept(fixed(0x41));
    EXPECT_EQ(a.read_mmio(kIrr + 0x20, 0), 0x00000002u);  // vector 41H: IRR bits 95:64, bit 1
    EXPECT_FALSE(tmr(a, 0x41));
    EXPECT_EQ(a.stats().accepted, 1u);
    EXPECT_EQ(a.pending_vector().value_or(0), 0x41);
}

TEST(Lapic, LevelFixedSetsIrrAndTmr)
{
    Lapic a(0, true);
    enable(a);
    a.accept(fixed(0x92, true));
    EXPECT_EQ(a.read_mmio(kIrr + 0x40, 0), 0x00040000u);  // vector 92H: bits 159:128, bit 18
    EXPECT_EQ(a.read_mmio(kTmr + 0x40, 0), 0x00040000u);
}

TEST(Lapic, LowestPriorityMessageIsAcceptedLikeFixed)
{
    Lapic a(0, true);
    enable(a);
    a.accept(of_mode(ApicDeliveryMode::kLowestPriority, 0x53));
    EXPECT_TRUE(irr(a, 0x53));
    EXPECT_EQ(a.acknowledge(), 0x53);
}

TEST(Lapic, AcknowledgeMovesIrrToIsr)
{
    Lapic a(0, true);
    enable(a);
    a.accept(fixed(0x41));
    a.accept(fixed(0x92, true));
    EXPECT_EQ(a.acknowledge(), 0x92);
    EXPECT_FALSE(irr(a, 0x92));
    EXPECT_TRUE(isr(a, 0x92));
    EXPECT_TRUE(irr(a, 0x41));
    EXPECT_EQ(a.read_mmio(kPpr, 0), 0x90u);
    EXPECT_FALSE(a.pending_vector().has_value()) << "41H is below the in-service class";
    EXPECT_EQ(a.stats().acknowledged, 1u);
}

TEST(Lapic, HigherClassNestsAndEoiClearsTheHighestIsrBit)
{
    Lapic a(0, true);
    enable(a);
    a.accept(fixed(0x41));
    ASSERT_EQ(a.acknowledge(), 0x41);
    a.accept(fixed(0x45));
    EXPECT_FALSE(a.pending_vector().has_value()) << "same class as the one in service";
    a.accept(fixed(0xa3));
    ASSERT_EQ(a.pending_vector().value_or(0), 0xa3);
    ASSERT_EQ(a.acknowledge(), 0xa3);
    EXPECT_TRUE(isr(a, 0x41));
    EXPECT_TRUE(isr(a, 0xa3));
    EXPECT_EQ(a.read_mmio(kPpr, 0), 0xa0u);

    a.write_mmio(kEoi, 0, 0);
    EXPECT_FALSE(isr(a, 0xa3));
    EXPECT_TRUE(isr(a, 0x41)) << "EOI clears only the highest ISR bit";
    EXPECT_EQ(a.read_mmio(kPpr, 0), 0x40u);
    EXPECT_FALSE(a.pending_vector().has_value());

    a.write_mmio(kEoi, 0, 0);
    EXPECT_TRUE(all_zero(a, kIsr));
    EXPECT_EQ(a.pending_vector().value_or(0), 0x45);
    EXPECT_EQ(a.stats().eois, 2u);
}

TEST(Lapic, LevelEoiIsBroadcastOnlyForTmrVectors)
{
    Lapic a(0, true);
    enable(a);
    a.accept(fixed(0x41));
    a.accept(fixed(0x92, true));
    ASSERT_EQ(a.acknowledge(), 0x92);
    a.write_mmio(kEoi, 0, 0);
    EXPECT_EQ(a.take_outputs().level_eois, std::vector<uint8_t>{0x92});
    ASSERT_EQ(a.acknowledge(), 0x41);
    a.write_mmio(kEoi, 0, 0);
    EXPECT_TRUE(a.take_outputs().level_eois.empty()) << "edge vector: no EOI message";
    EXPECT_EQ(a.stats().level_eois, 1u);
}

TEST(Lapic, SvrBit12SuppressesTheEoiBroadcast)
{
    Lapic a(0, true);
    a.write_mmio(kSvr, kSvrOnNoEoiBroadcast, 0);
    EXPECT_EQ(a.read_mmio(kSvr, 0), 0x11ffu);
    a.accept(fixed(0x92, true));
    ASSERT_EQ(a.acknowledge(), 0x92);
    a.write_mmio(kEoi, 0, 0);
    EXPECT_FALSE(isr(a, 0x92));
    EXPECT_TRUE(a.take_outputs().level_eois.empty());
    EXPECT_EQ(a.stats().level_eois, 0u);
}

TEST(Lapic, SameVectorTwiceBeforeAcknowledgeCoalesces)
{
    Lapic a(0, true);
    enable(a);
    a.accept(fixed(0x41));
    a.accept(fixed(0x41));
    EXPECT_EQ(a.stats().coalesced, 1u);
    EXPECT_EQ(a.acknowledge(), 0x41);
    EXPECT_FALSE(a.pending_vector().has_value());
    a.write_mmio(kEoi, 0, 0);
    EXPECT_FALSE(a.pending_vector().has_value()) << "two requests collapsed into one IRR bit";
}

TEST(Lapic, IrrAndIsrQueueOneEachForAVector)
{
    // 11.8.4: a vector can be set in both IRR and ISR.
    Lapic a(0, true);
    enable(a);
    a.accept(fixed(0x41));
    ASSERT_EQ(a.acknowledge(), 0x41);
    a.accept(fixed(0x41));
    EXPECT_TRUE(irr(a, 0x41));
    EXPECT_TRUE(isr(a, 0x41));
    EXPECT_EQ(a.stats().coalesced, 0u);
    EXPECT_FALSE(a.pending_vector().has_value());
    a.write_mmio(kEoi, 0, 0);
    EXPECT_EQ(a.pending_vector().value_or(0), 0x41);
}

TEST(Lapic, EoiWithNothingInServiceSendsNoEoiMessage)
{
    Lapic a(0, true);
    enable(a);
    a.accept(fixed(0x92, true));  // in IRR, not yet acknowledged
    a.write_mmio(kEoi, 0, 0);
    EXPECT_TRUE(a.take_outputs().level_eois.empty());
    EXPECT_TRUE(irr(a, 0x92)) << "EOI touches ISR only";
    EXPECT_EQ(a.acknowledge(), 0x92);
}

// ---------------------------------------------------------------------------
// 11.9: spurious interrupt.

TEST(Lapic, AcknowledgeWithNothingDeliverableReturnsTheSpuriousVector)
{
    Lapic a(0, true);
    a.write_mmio(kSvr, 0x1e7, 0);
    EXPECT_EQ(a.acknowledge(), 0xe7);
    EXPECT_TRUE(all_zero(a, kIsr));
    a.write_mmio(kTpr, 0x50, 0);
    a.accept(fixed(0x55));
    EXPECT_EQ(a.acknowledge(), 0xe7) << "masked by TPR: spurious";
    EXPECT_TRUE(irr(a, 0x55)) << "the spurious vector leaves IRR alone";
    EXPECT_TRUE(all_zero(a, kIsr)) << "and does not touch ISR";
    EXPECT_EQ(a.read_mmio(kPpr, 0), 0x50u);
    EXPECT_EQ(a.stats().spurious, 2u);
}

// ---------------------------------------------------------------------------
// 11.4.7.2: software-disabled APIC.

TEST(Lapic, SoftwareDisabledDropsFixedButTakesNmiInitSipi)
{
    Lapic a(1, false);  // SVR FFH after reset: software-disabled
    a.accept(fixed(0x41));
    EXPECT_FALSE(irr(a, 0x41));
    EXPECT_EQ(a.stats().dropped_disabled, 1u);
    a.accept(of_mode(ApicDeliveryMode::kLowestPriority, 0x42));
    EXPECT_FALSE(irr(a, 0x42));
    EXPECT_EQ(a.stats().dropped_disabled, 2u);

    a.accept(of_mode(ApicDeliveryMode::kNmi));
    EXPECT_TRUE(a.nmi_pending());
    a.accept(of_mode(ApicDeliveryMode::kInit));
    EXPECT_TRUE(a.init_pending());
    a.accept(of_mode(ApicDeliveryMode::kStartup, 0x9a));
    EXPECT_TRUE(a.sipi_pending());
    EXPECT_EQ(a.take_sipi().value_or(0), 0x9a);
}

TEST(Lapic, LvtMaskStaysSetWhileSoftwareDisabled)
{
    Lapic a(0, true);
    a.write_mmio(kLvtTimer, 0x000000ec, 0);
    EXPECT_EQ(a.read_mmio(kLvtTimer, 0), 0x000100ecu) << "mask cannot be cleared while disabled";
    a.write_mmio(kLvtLint0, 0x00000700, 0);
    EXPECT_EQ(a.read_mmio(kLvtLint0, 0), 0x00010700u);
    enable(a);
    a.write_mmio(kLvtLint0, 0x00000700, 0);
    EXPECT_EQ(a.read_mmio(kLvtLint0, 0), 0x00000700u);
}

TEST(Lapic, SoftwareDisableSetsEveryLvtMask)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kLvtTimer, 0x000000ec, 0);
    a.write_mmio(kLvtLint0, 0x00000700, 0);
    a.write_mmio(kLvtLint1, 0x00000400, 0);
    a.write_mmio(kLvtError, 0x000000fe, 0);
    a.write_mmio(kSvr, 0x0ff, 0);
    EXPECT_FALSE(a.software_enabled());
    EXPECT_EQ(a.read_mmio(kLvtTimer, 0), 0x000100ecu);
    EXPECT_EQ(a.read_mmio(kLvtLint0, 0), 0x00010700u);
    EXPECT_EQ(a.read_mmio(kLvtLint1, 0), 0x00010400u);
    EXPECT_EQ(a.read_mmio(kLvtError, 0), 0x000100feu);
}

TEST(Lapic, SoftwareDisableKeepsPendingIrr)
{
    // 11.4.7.2: pending interrupts in IRR and ISR are held.
    Lapic a(0, true);
    enable(a);
    a.accept(fixed(0x41));
    a.accept(fixed(0x61));
    ASSERT_EQ(a.acknowledge(), 0x61);
    a.write_mmio(kSvr, 0x0ff, 0);
    EXPECT_TRUE(irr(a, 0x41));
    EXPECT_TRUE(isr(a, 0x61));
}

// ---------------------------------------------------------------------------
// 11.5.3: error handling.

TEST(Lapic, SendIllegalVectorIsSeenAfterTheEsrWrite)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kEsr, 0, 0);
    send_icr(a, 0x01000000, kAssert | kDmFixed | 0x05);
    EXPECT_EQ(a.read_mmio(kEsr, 0), 0u) << "the error is not visible before the next ESR write";
    a.write_mmio(kEsr, 0, 0);
    EXPECT_EQ(a.read_mmio(kEsr, 0), 0x00000020u) << "bit 5: send illegal vector";
    EXPECT_EQ(read_esr(a), 0u) << "the write clears what was logged";
    EXPECT_TRUE(a.take_outputs().ipis.empty()) << "an illegal vector is delivered to no one";
    EXPECT_GE(a.stats().illegal_vectors, 1u);
}

TEST(Lapic, NmiAndInitIpisIgnoreTheVectorField)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kEsr, 0, 0);
    send_icr(a, 0x01000000, kAssert | kDmNmi);
    send_icr(a, 0x01000000, kAssert | kDmInit);
    EXPECT_EQ(read_esr(a), 0u);
    EXPECT_EQ(a.take_outputs().ipis.size(), 2u);
}

TEST(Lapic, ReceiveIllegalVectorSetsEsrBit6AndNoIrrBit)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kEsr, 0, 0);
    a.accept(fixed(0x05));
    EXPECT_TRUE(all_zero(a, kIrr)) << "the APIC never sets an IRR bit in 0-15";
    EXPECT_FALSE(a.pending_vector().has_value());
    EXPECT_EQ(read_esr(a), 0x00000040u);
}

TEST(Lapic, IllegalLvtVectorIsAReceiveError)
{
    // 11.5.3 bit 6: also for an interrupt generated locally from the LVT.
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kLvtTimer, 0x00000005, kT0);
    a.write_mmio(kTimerDivide, 0xb, kT0);
    a.write_mmio(kEsr, 0, kT0);
    a.write_mmio(kTimerInitial, 100, kT0);
    a.advance_time(kT0 + 100);
    EXPECT_TRUE(all_zero(a, kIrr));
    EXPECT_EQ(read_esr(a), 0x00000040u);
}

TEST(Lapic, UnmaskedLvtErrorRaisesItsVectorAndRearmsOnEsrWrite)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kLvtError, 0x000000e3, 0);
    a.write_mmio(kEsr, 0, 0);
    send_icr(a, 0, kAssert | kDmFixed | 0x07);
    EXPECT_TRUE(irr(a, 0xe3));
    ASSERT_EQ(a.acknowledge(), 0xe3);
    a.write_mmio(kEoi, 0, 0);

    send_icr(a, 0, kAssert | kDmFixed | 0x07);
    EXPECT_FALSE(irr(a, 0xe3)) << "not re-armed: no ESR write since the last error interrupt";

    a.write_mmio(kEsr, 0, 0);
    send_icr(a, 0, kAssert | kDmFixed | 0x07);
    EXPECT_TRUE(irr(a, 0xe3)) << "the ESR write re-armed the error interrupt";
}

TEST(Lapic, MaskedLvtErrorStillLogsTheError)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kLvtError, 0x000100e3, 0);
    a.write_mmio(kEsr, 0, 0);
    send_icr(a, 0, kAssert | kDmFixed | 0x07);
    EXPECT_FALSE(irr(a, 0xe3));
    EXPECT_EQ(read_esr(a), 0x00000020u);
}

// ---------------------------------------------------------------------------
// 11.6.1: the ICR.

TEST(Lapic, FixedIpiFromIcr)
{
    Lapic a(3, true);
    enable(a);
    send_icr(a, 0x02000000, kAssert | kDmFixed | 0x31);
    const LapicOutputs out = a.take_outputs();
    ASSERT_EQ(out.ipis.size(), 1u);
    EXPECT_EQ(out.ipis[0], (ApicMessage{.vector = 0x31,
                                        .mode = ApicDeliveryMode::kFixed,
                                        .destination = 2,
                                        .logical = false,
                                        .level = false,
                                        .assert = true,
                                        .shorthand = ApicShorthand::kNone,
                                        .source_id = 3}));
    EXPECT_EQ(a.read_mmio(kIcrLow, 0), 0x00004031u) << "delivery status (bit 12) reads idle";
    EXPECT_EQ(a.read_mmio(kIcrHigh, 0), 0x02000000u);
    EXPECT_EQ(a.stats().ipis_sent, 1u);
    EXPECT_TRUE(a.take_outputs().ipis.empty()) << "taken once";
}

TEST(Lapic, IcrLevelBitIsIssuedAsOne)
{
    // 11.6.1 Level flag: no meaning on Pentium 4 and later, always issued as 1.
    // Linux sends fixed IPIs with bit 14 clear.
    Lapic a(0, true);
    enable(a);
    send_icr(a, 0x01000000, kDmFixed | 0xfd);
    const LapicOutputs out = a.take_outputs();
    ASSERT_EQ(out.ipis.size(), 1u);
    EXPECT_EQ(out.ipis[0].vector, 0xfd);
    EXPECT_EQ(out.ipis[0].destination, 1u);
    EXPECT_TRUE(out.ipis[0].assert);
}

TEST(Lapic, FixedIpiWithLevelFlagClearIsStillDelivered)
{
    // Linux's self IPI through the ICR: shorthand self, fixed, bit 14 clear.
    Lapic a(0, true);
    enable(a);
    send_icr(a, 0, kShSelf | kDmFixed | 0x41);
    drain_to_self(a);
    EXPECT_TRUE(irr(a, 0x41));
    EXPECT_EQ(a.pending_vector().value_or(0), 0x41);
}

TEST(Lapic, IcrTriggerModeIsIssuedAsEdge)
{
    // 11.6.1 Trigger Mode: no meaning on Pentium 4 and later, always issued as
    // 0 (edge); valid ICR combinations for Pentium 4, note 2: a level trigger is overridden to edge.
    // Linux's INIT assert is 0000C500H (level trigger, level assert).
    Lapic a(0, true);
    enable(a);
    send_icr(a, 0x01000000, kTrigLevel | kAssert | kDmFixed | 0x61);
    send_icr(a, 0x01000000, kTrigLevel | kAssert | kDmInit);
    const LapicOutputs out = a.take_outputs();
    ASSERT_EQ(out.ipis.size(), 2u);
    EXPECT_FALSE(out.ipis[0].level);
    EXPECT_EQ(out.ipis[1].mode, ApicDeliveryMode::kInit);
    EXPECT_FALSE(out.ipis[1].level);
    EXPECT_TRUE(out.ipis[1].assert);
}

TEST(Lapic, DeliveryStatusIsReadOnlyAndReadsIdle)
{
    Lapic a(0, true);
    enable(a);
    send_icr(a, 0x01000000, kDelivs | kAssert | 0x31);
    EXPECT_EQ(a.read_mmio(kIcrLow, 0) & kDelivs, 0u);
    EXPECT_EQ(a.read_mmio(kIcrLow, 0), 0x00004031u);
}

TEST(Lapic, WritingIcrHighAloneSendsNothing)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kIcrHigh, 0x05000000, 0);
    EXPECT_TRUE(a.take_outputs().ipis.empty());
}

TEST(Lapic, NmiInitAndStartupIpis)
{
    Lapic a(0, true);
    enable(a);
    send_icr(a, 0x01000000, kAssert | kDmNmi);
    send_icr(a, 0x02000000, kAssert | kDmInit);
    send_icr(a, 0x02000000, kAssert | kDmStartup | 0x9a);
    const LapicOutputs out = a.take_outputs();
    ASSERT_EQ(out.ipis.size(), 3u);
    EXPECT_EQ(out.ipis[0].mode, ApicDeliveryMode::kNmi);
    EXPECT_EQ(out.ipis[0].destination, 1u);
    EXPECT_EQ(out.ipis[1], (ApicMessage{.vector = 0,
                                        .mode = ApicDeliveryMode::kInit,
                                        .destination = 2,
                                        .logical = false,
                                        .level = false,
                                        .assert = true,
                                        .shorthand = ApicShorthand::kNone,
                                        .source_id = 0}));
    EXPECT_EQ(out.ipis[2], (ApicMessage{.vector = 0x9a,
                                        .mode = ApicDeliveryMode::kStartup,
                                        .destination = 2,
                                        .logical = false,
                                        .level = false,
                                        .assert = true,
                                        .shorthand = ApicShorthand::kNone,
                                        .source_id = 0}));
}

TEST(Lapic, InitLevelDeassertSendsNothing)
{
    // Linux's wakeup sequence: INIT assert (level), then INIT de-assert
    // (level trigger, level flag 0), which a Pentium 4 and later ignores.
    Lapic a(0, true);
    enable(a);
    send_icr(a, 0x01000000, kTrigLevel | kAssert | kDmInit);
    EXPECT_EQ(a.take_outputs().ipis.size(), 1u);
    send_icr(a, 0x01000000, kTrigLevel | kDmInit);
    EXPECT_TRUE(a.take_outputs().ipis.empty());
}

TEST(Lapic, ShorthandIpisCarryTheSender)
{
    Lapic a(4, true);
    enable(a);
    send_icr(a, 0, kShSelf | kAssert | 0x41);
    send_icr(a, 0, kShAll | kAssert | 0x42);
    send_icr(a, 0, kShAllButSelf | kAssert | 0x43);
    send_icr(a, 0, kShAllButSelf | kAssert | kDmInit);
    const LapicOutputs out = a.take_outputs();
    ASSERT_EQ(out.ipis.size(), 4u);
    const ApicShorthand want[] = {ApicShorthand::kSelf, ApicShorthand::kAllIncludingSelf,
                                  ApicShorthand::kAllExcludingSelf, ApicShorthand::kAllExcludingSelf};
    for (unsigned i = 0; i < 4; ++i) {
        EXPECT_EQ(out.ipis[i].shorthand, want[i]) << i;
        EXPECT_EQ(out.ipis[i].source_id, 4u) << i;
    }
    EXPECT_EQ(out.ipis[0].vector, 0x41);
    EXPECT_EQ(out.ipis[1].vector, 0x42);
    EXPECT_EQ(out.ipis[2].vector, 0x43);
    EXPECT_EQ(out.ipis[3].mode, ApicDeliveryMode::kInit);
}

TEST(Lapic, SelfIpiThroughIcrReachesTheSender)
{
    Lapic a(4, true);
    enable(a);
    send_icr(a, 0, kShSelf | kAssert | 0x41);
    drain_to_self(a);
    EXPECT_TRUE(irr(a, 0x41));
    EXPECT_EQ(a.pending_vector().value_or(0), 0x41);
}

TEST(Lapic, LogicalIpi)
{
    Lapic a(0, true);
    enable(a);
    send_icr(a, 0x0c000000, kLogical | kAssert | kDmFixed | 0x51);
    const LapicOutputs out = a.take_outputs();
    ASSERT_EQ(out.ipis.size(), 1u);
    EXPECT_TRUE(out.ipis[0].logical);
    EXPECT_EQ(out.ipis[0].destination, 0x0cu);
    EXPECT_EQ(out.ipis[0].vector, 0x51);
    EXPECT_EQ(a.read_mmio(kIcrLow, 0), 0x00004851u);
}

// ---------------------------------------------------------------------------
// 11.6.2: destinations.

TEST(Lapic, PhysicalDestination)
{
    Lapic a(3, true);
    EXPECT_TRUE(a.matches(3, false));
    EXPECT_FALSE(a.matches(4, false));
    EXPECT_FALSE(a.matches(0, false));
    EXPECT_TRUE(a.matches(0xff, false)) << "FFH is the xAPIC broadcast ID";
}

TEST(Lapic, LogicalFlatDestination)
{
    Lapic a(3, true);
    enable(a);
    EXPECT_FALSE(a.matches(0x01, true)) << "LDR 0 after reset";
    a.write_mmio(kLdr, 0x02000000, 0);
    EXPECT_EQ(a.read_mmio(kLdr, 0), 0x02000000u);
    EXPECT_TRUE(a.matches(0x02, true));
    EXPECT_TRUE(a.matches(0x03, true)) << "the MDA is a bitmap: AND with the logical ID";
    EXPECT_FALSE(a.matches(0x04, true));
    EXPECT_FALSE(a.matches(0x01, true));
    EXPECT_TRUE(a.matches(0xff, true)) << "all ones: broadcast";
}

TEST(Lapic, LdrKeepsOnlyBits31To24)
{
    Lapic a(0, true);
    a.write_mmio(kLdr, 0x02ffffff, 0);
    EXPECT_EQ(a.read_mmio(kLdr, 0), 0x02000000u);
}

TEST(Lapic, LogicalClusterDestination)
{
    Lapic a(3, true);
    a.write_mmio(kDfr, 0x0fffffff, 0);
    EXPECT_EQ(a.read_mmio(kDfr, 0), 0x0fffffffu);
    a.write_mmio(kLdr, 0x21000000, 0);  // cluster 2, member bit 0
    enable(a);
    EXPECT_TRUE(a.matches(0x21, true));
    EXPECT_TRUE(a.matches(0x23, true)) << "members 0 and 1 of cluster 2";
    EXPECT_FALSE(a.matches(0x22, true)) << "cluster 2, another member";
    EXPECT_FALSE(a.matches(0x11, true)) << "member 0 of cluster 1";
    EXPECT_FALSE(a.matches(0x31, true));
    EXPECT_FALSE(a.matches(0x20, true)) << "cluster 2 with no member bit";
    EXPECT_TRUE(a.matches(0xff, true)) << "all destination bits one: broadcast";
    a.write_mmio(kDfr, 0xffffffff, 0);
    EXPECT_TRUE(a.matches(0x20, true)) << "flat model again: 20H shares bit 5 with the logical ID 21H";
}

TEST(Lapic, HardwareDisabledApicMatchesNothing)
{
    Lapic a(3, false);
    a.write_mmio(kLdr, 0x02000000, 0);
    a.set_apic_base(0xfee00000);  // EN = 0
    EXPECT_FALSE(a.hardware_enabled());
    EXPECT_FALSE(a.matches(3, false));
    EXPECT_FALSE(a.matches(0xff, false));
    EXPECT_FALSE(a.matches(0xff, true));
    EXPECT_FALSE(a.matches(0x02, true));
}

TEST(Lapic, RoutePhysicalLogicalAndShorthands)
{
    Lapic a0(0, true), a1(1, false), a2(2, false);
    for (Lapic* a : {&a0, &a1, &a2}) enable(*a);
    a0.write_mmio(kLdr, 0x01000000, 0);
    a1.write_mmio(kLdr, 0x02000000, 0);
    a2.write_mmio(kLdr, 0x04000000, 0);
    const std::vector<const Lapic*> bus{&a0, &a1, &a2};

    ApicMessage m = fixed(0x41);
    m.destination = 1;
    EXPECT_EQ(sorted(route_apic_message(bus, m)), (std::vector<unsigned>{1}));
    m.destination = 0xff;
    EXPECT_EQ(sorted(route_apic_message(bus, m)), (std::vector<unsigned>{0, 1, 2}));
    m.destination = 7;
    EXPECT_TRUE(route_apic_message(bus, m).empty()) << "no APIC has ID 7";
    m.logical = true;
    m.destination = 0x06;
    EXPECT_EQ(sorted(route_apic_message(bus, m)), (std::vector<unsigned>{1, 2}));

    ApicMessage s = fixed(0x42);
    s.destination = 0;  // ignored with a shorthand
    s.source_id = 2;
    s.shorthand = ApicShorthand::kSelf;
    EXPECT_EQ(sorted(route_apic_message(bus, s)), (std::vector<unsigned>{2}));
    s.shorthand = ApicShorthand::kAllIncludingSelf;
    EXPECT_EQ(sorted(route_apic_message(bus, s)), (std::vector<unsigned>{0, 1, 2}));
    s.source_id = 1;
    s.shorthand = ApicShorthand::kAllExcludingSelf;
    EXPECT_EQ(sorted(route_apic_message(bus, s)), (std::vector<unsigned>{0, 2}));
}

TEST(Lapic, RouteSkipsHardwareDisabledApics)
{
    Lapic a0(0, true), a1(1, false), a2(2, false);
    for (Lapic* a : {&a0, &a1, &a2}) enable(*a);
    a1.set_apic_base(0xfee00000);  // EN = 0
    const std::vector<const Lapic*> bus{&a0, &a1, &a2};
    ApicMessage m = fixed(0x41);
    m.destination = 1;
    EXPECT_TRUE(route_apic_message(bus, m).empty());
    m.destination = 0xff;
    EXPECT_EQ(sorted(route_apic_message(bus, m)), (std::vector<unsigned>{0, 2}));
    ApicMessage s = fixed(0x42);
    s.source_id = 0;
    s.shorthand = ApicShorthand::kAllIncludingSelf;
    EXPECT_EQ(sorted(route_apic_message(bus, s)), (std::vector<unsigned>{0, 2}));
}

// 11.6.2.4: IF TPR[7:4] >= IRRV[7:4] AND TPR[7:4] > ISRV[7:4] THEN APR[7:0] = TPR[7:0].
TEST(Lapic, ArbitrationPriorityIsTprOrTheHighestPendingClass)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kTpr, 0x25, 0);
    EXPECT_EQ(a.arbitration_priority(), 0x25);
    a.accept(fixed(0x51));
    EXPECT_EQ(a.arbitration_priority(), 0x50) << "IRRV class 5 above TPR class 2: APR[7:4] = 5, APR[3:0] = 0";
    ASSERT_EQ(a.acknowledge(), 0x51);
    // (ISR case not asserted: the SDM's P6 formula, the Pentium 4 chipset's
    // TPR-only choice and the header's "highest ISR class" all differ.)
    a.write_mmio(kEoi, 0, 0);
    EXPECT_EQ(a.arbitration_priority(), 0x25) << "APR[7:0] = TPR[7:0] with nothing above it";
}

TEST(Lapic, LowestPriorityPicksTheLowestArbitrationPriority)
{
    Lapic a0(0, true), a1(1, false), a2(2, false);
    for (Lapic* a : {&a0, &a1, &a2}) enable(*a);
    a0.write_mmio(kLdr, 0x01000000, 0);
    a1.write_mmio(kLdr, 0x02000000, 0);
    a2.write_mmio(kLdr, 0x04000000, 0);
    a0.write_mmio(kTpr, 0x30, 0);
    a1.write_mmio(kTpr, 0x10, 0);
    a2.write_mmio(kTpr, 0x20, 0);
    const std::vector<const Lapic*> bus{&a0, &a1, &a2};

    ApicMessage m = of_mode(ApicDeliveryMode::kLowestPriority, 0x61);
    m.logical = true;
    m.destination = 0x07;
    EXPECT_EQ(route_apic_message(bus, m), (std::vector<unsigned>{1}));
    m.destination = 0x05;  // only among the addressed APICs
    EXPECT_EQ(route_apic_message(bus, m), (std::vector<unsigned>{2}));
    a1.write_mmio(kTpr, 0x40, 0);
    m.destination = 0x07;
    EXPECT_EQ(route_apic_message(bus, m), (std::vector<unsigned>{2}));
    m.destination = 0x08;
    EXPECT_TRUE(route_apic_message(bus, m).empty());
}

TEST(Lapic, LowestPriorityTiesRotateFromRrStart)
{
    Lapic a0(0, true), a1(1, false), a2(2, false);
    for (Lapic* a : {&a0, &a1, &a2}) enable(*a);
    const std::vector<const Lapic*> bus{&a0, &a1, &a2};
    ApicMessage m = of_mode(ApicDeliveryMode::kLowestPriority, 0x61);
    m.destination = 0xff;
    EXPECT_EQ(route_apic_message(bus, m, 0), (std::vector<unsigned>{0}));
    EXPECT_EQ(route_apic_message(bus, m, 2), (std::vector<unsigned>{2}));
    a2.write_mmio(kTpr, 0x20, 0);
    EXPECT_EQ(route_apic_message(bus, m, 2), (std::vector<unsigned>{0})) << "wraps past the end";
}

// ---------------------------------------------------------------------------
// 11.5.4: the APIC timer (1 GHz bus, one count per ns before the divider).

TEST(Lapic, OneShotCountsDownAndFiresAtExpiry)
{
    Lapic a(0, true);
    enable(a, kT0);
    a.write_mmio(kTimerDivide, 0xb, kT0);  // divide by 1
    a.write_mmio(kLvtTimer, 0x000000ec, kT0);
    a.write_mmio(kTimerInitial, 1000, kT0);
    EXPECT_EQ(a.read_mmio(kTimerInitial, kT0), 1000u);
    EXPECT_EQ(a.next_timer_ns().value_or(0), kT0 + 1000);
    EXPECT_EQ(a.read_mmio(kTimerCurrent, kT0 + 400), 600u);
    EXPECT_EQ(a.read_mmio(kTimerCurrent, kT0 + 900), 100u);
    a.advance_time(kT0 + 999);
    EXPECT_FALSE(irr(a, 0xec));
    a.advance_time(kT0 + 1000);
    EXPECT_EQ(a.read_mmio(kIrr + 0x70, 0), 0x00001000u);  // vector ECH: bits 255:224, bit 12
    EXPECT_FALSE(a.next_timer_ns().has_value()) << "one-shot: not re-armed";
    EXPECT_EQ(a.read_mmio(kTimerCurrent, kT0 + 1500), 0u);
    EXPECT_EQ(a.read_mmio(kTimerInitial, kT0 + 1500), 1000u);
    EXPECT_EQ(a.stats().timer_fires, 1u);
}

TEST(Lapic, InitialCountWriteRestartsTheCount)
{
    Lapic a(0, true);
    enable(a, kT0);
    a.write_mmio(kTimerDivide, 0xb, kT0);
    a.write_mmio(kLvtTimer, 0x000000ec, kT0);
    a.write_mmio(kTimerInitial, 1000, kT0);
    a.write_mmio(kTimerInitial, 1000, kT0 + 300);
    EXPECT_EQ(a.next_timer_ns().value_or(0), kT0 + 1300);
    EXPECT_EQ(a.read_mmio(kTimerCurrent, kT0 + 300), 1000u);
    a.advance_time(kT0 + 1000);
    EXPECT_FALSE(irr(a, 0xec));
    a.advance_time(kT0 + 1300);
    EXPECT_TRUE(irr(a, 0xec));
}

TEST(Lapic, DivideConfigurationValues)
{
    // 11.5.4 divide configuration: bits 3,1,0 = 000 -> 2, 001 -> 4, 010 -> 8, 011 -> 16,
    // 100 -> 32, 101 -> 64, 110 -> 128, 111 -> 1.
    const struct {
        uint32_t dcr;
        uint64_t divisor;
    } cases[] = {{0x0, 2}, {0x1, 4}, {0x2, 8}, {0x3, 16}, {0x8, 32}, {0x9, 64}, {0xa, 128}, {0xb, 1}};
    for (const auto& c : cases) {
        Lapic a(0, true);
        enable(a, kT0);
        a.write_mmio(kTimerDivide, c.dcr, kT0);
        EXPECT_EQ(a.read_mmio(kTimerDivide, kT0), c.dcr);
        a.write_mmio(kLvtTimer, 0x000000ec, kT0);
        a.write_mmio(kTimerInitial, 100, kT0);
        EXPECT_EQ(a.next_timer_ns().value_or(0), kT0 + 100 * c.divisor) << "DCR " << c.dcr;
        EXPECT_EQ(a.read_mmio(kTimerCurrent, kT0 + 50 * c.divisor), 50u) << "DCR " << c.dcr;
        a.advance_time(kT0 + 100 * c.divisor - 1);
        EXPECT_FALSE(irr(a, 0xec)) << "DCR " << c.dcr;
        a.advance_time(kT0 + 100 * c.divisor);
        EXPECT_TRUE(irr(a, 0xec)) << "DCR " << c.dcr;
    }
}

TEST(Lapic, ResetDivideIsByTwo)
{
    Lapic a(0, true);
    enable(a, kT0);
    a.write_mmio(kLvtTimer, 0x000000ec, kT0);
    a.write_mmio(kTimerInitial, 1000, kT0);
    EXPECT_EQ(a.next_timer_ns().value_or(0), kT0 + 2000);
    EXPECT_EQ(a.read_mmio(kTimerCurrent, kT0 + 1000), 500u);
}

TEST(Lapic, PeriodicReloadsFromTheInitialCount)
{
    Lapic a(0, true);
    enable(a, kT0);
    a.write_mmio(kTimerDivide, 0xb, kT0);
    a.write_mmio(kLvtTimer, kPeriodic | 0xec, kT0);
    EXPECT_EQ(a.read_mmio(kLvtTimer, kT0), 0x000200ecu);
    a.write_mmio(kTimerInitial, 500, kT0);
    a.advance_time(kT0 + 499);
    EXPECT_FALSE(irr(a, 0xec));
    a.advance_time(kT0 + 500);
    EXPECT_TRUE(irr(a, 0xec));
    EXPECT_EQ(a.next_timer_ns().value_or(0), kT0 + 1000);
    EXPECT_EQ(a.read_mmio(kTimerCurrent, kT0 + 700), 300u) << "counting again from 500";
    ASSERT_EQ(a.acknowledge(), 0xec);
    a.write_mmio(kEoi, 0, kT0 + 700);
    a.advance_time(kT0 + 1000);
    EXPECT_TRUE(irr(a, 0xec));
    EXPECT_EQ(a.next_timer_ns().value_or(0), kT0 + 1500);
    ASSERT_EQ(a.acknowledge(), 0xec);
    a.write_mmio(kEoi, 0, kT0 + 1000);

    // Late by several periods: one IRR bit, next expiry on the period grid.
    a.advance_time(kT0 + 2700);
    EXPECT_TRUE(irr(a, 0xec));
    EXPECT_EQ(a.next_timer_ns().value_or(0), kT0 + 3000);
    EXPECT_EQ(a.read_mmio(kTimerCurrent, kT0 + 2700), 300u);
}

TEST(Lapic, MaskedTimerCountsButDoesNotInterrupt)
{
    Lapic a(0, true);
    enable(a, kT0);
    a.write_mmio(kTimerDivide, 0xb, kT0);
    a.write_mmio(kLvtTimer, kMasked | 0xec, kT0);
    a.write_mmio(kTimerInitial, 100, kT0);
    EXPECT_EQ(a.read_mmio(kTimerCurrent, kT0 + 40), 60u);
    a.advance_time(kT0 + 100);
    EXPECT_FALSE(irr(a, 0xec));
    EXPECT_TRUE(all_zero(a, kIrr));
    EXPECT_EQ(a.read_mmio(kTimerCurrent, kT0 + 150), 0u);
    a.write_mmio(kLvtTimer, 0xec, kT0 + 200);
    a.advance_time(kT0 + 300);
    EXPECT_FALSE(irr(a, 0xec)) << "unmasking later does not replay the expiry";
}

TEST(Lapic, InitialCountZeroStopsTheTimer)
{
    Lapic a(0, true);
    enable(a, kT0);
    a.write_mmio(kTimerDivide, 0xb, kT0);
    a.write_mmio(kLvtTimer, kPeriodic | 0xec, kT0);
    a.write_mmio(kTimerInitial, 1000, kT0);
    a.write_mmio(kTimerInitial, 0, kT0 + 300);
    EXPECT_FALSE(a.next_timer_ns().has_value());
    a.advance_time(kT0 + 5000);
    EXPECT_FALSE(irr(a, 0xec));
    EXPECT_EQ(a.read_mmio(kTimerCurrent, kT0 + 5000), 0u);
}

TEST(Lapic, TscDeadlineModeFiresOnceAndClearsTheMsr)
{
    Lapic a(0, true);
    enable(a, kT0);
    a.write_mmio(kLvtTimer, kTscDeadline | 0xec, kT0);
    EXPECT_EQ(a.read_mmio(kLvtTimer, kT0), 0x000400ecu);
    EXPECT_TRUE(a.tsc_deadline_mode());
    EXPECT_EQ(a.tsc_deadline(), 0u);
    a.set_tsc_deadline(123456789, kT0 + 7000);
    EXPECT_EQ(a.tsc_deadline(), 123456789u);
    EXPECT_EQ(a.next_timer_ns().value_or(0), kT0 + 7000);
    a.advance_time(kT0 + 6999);
    EXPECT_FALSE(irr(a, 0xec));
    a.advance_time(kT0 + 7000);
    EXPECT_TRUE(irr(a, 0xec));
    EXPECT_EQ(a.tsc_deadline(), 0u) << "the timer clears IA32_TSC_DEADLINE when it fires";
    EXPECT_FALSE(a.next_timer_ns().has_value());
    EXPECT_EQ(a.stats().timer_fires, 1u);
}

TEST(Lapic, TscDeadlineZeroDisarms)
{
    Lapic a(0, true);
    enable(a, kT0);
    a.write_mmio(kLvtTimer, kTscDeadline | 0xec, kT0);
    a.set_tsc_deadline(5000, kT0 + 5000);
    a.set_tsc_deadline(0, std::nullopt);
    EXPECT_FALSE(a.next_timer_ns().has_value());
    a.advance_time(kT0 + 10000);
    EXPECT_FALSE(irr(a, 0xec));
}

TEST(Lapic, TscDeadlineModeIgnoresInitialCount)
{
    Lapic a(0, true);
    enable(a, kT0);
    a.write_mmio(kTimerDivide, 0xb, kT0);
    a.write_mmio(kLvtTimer, kTscDeadline | 0xec, kT0);
    a.write_mmio(kTimerInitial, 1000, kT0);
    EXPECT_EQ(a.read_mmio(kTimerInitial, kT0), 0u) << "the write is ignored";
    EXPECT_EQ(a.read_mmio(kTimerCurrent, kT0 + 10), 0u) << "current count always reads 0";
    EXPECT_FALSE(a.next_timer_ns().has_value());
    a.advance_time(kT0 + 2000);
    EXPECT_FALSE(irr(a, 0xec));
}

TEST(Lapic, TscDeadlineOutsideThatModeReadsZeroAndIgnoresWrites)
{
    Lapic a(0, true);
    enable(a, kT0);
    a.write_mmio(kLvtTimer, 0x000000ec, kT0);  // one-shot
    EXPECT_FALSE(a.tsc_deadline_mode());
    a.set_tsc_deadline(5000, kT0 + 5000);
    EXPECT_EQ(a.tsc_deadline(), 0u);
    EXPECT_FALSE(a.next_timer_ns().has_value());
    a.advance_time(kT0 + 6000);
    EXPECT_FALSE(irr(a, 0xec));
}

TEST(Lapic, ChangingTheTimerModeDisarms)
{
    // 11.5.4.1: a write to the LVT timer that changes the mode disarms the timer.
    Lapic a(0, true);
    enable(a, kT0);
    a.write_mmio(kTimerDivide, 0xb, kT0);
    a.write_mmio(kLvtTimer, 0x000000ec, kT0);
    a.write_mmio(kTimerInitial, 1000, kT0);
    a.write_mmio(kLvtTimer, kTscDeadline | 0xec, kT0 + 100);
    EXPECT_FALSE(a.next_timer_ns().has_value());
    a.advance_time(kT0 + 2000);
    EXPECT_FALSE(irr(a, 0xec));

    a.set_tsc_deadline(9000, kT0 + 3000);
    a.write_mmio(kLvtTimer, 0x000000ec, kT0 + 2500);
    EXPECT_FALSE(a.next_timer_ns().has_value());
    a.advance_time(kT0 + 4000);
    EXPECT_FALSE(irr(a, 0xec));
}

// ---------------------------------------------------------------------------
// 11.12: x2APIC.

TEST(Lapic, X2apicIdVersionAndLdr)
{
    Lapic a(0x123, true);
    uint64_t v = 0;
    EXPECT_FALSE(a.read_msr(kMsrId, v, 0)) << "#GP outside x2APIC mode";
    enter_x2apic(a);
    EXPECT_TRUE(a.x2apic_mode());
    EXPECT_EQ(a.apic_base(), 0xfee00d00u);
    ASSERT_TRUE(a.read_msr(kMsrId, v, 0));
    EXPECT_EQ(v, 0x123u) << "the full 32-bit x2APIC ID";
    ASSERT_TRUE(a.read_msr(kMsrVersion, v, 0));
    EXPECT_EQ(v, 0x01050014u);
    ASSERT_TRUE(a.read_msr(kMsrLdr, v, 0));
    EXPECT_EQ(v, 0x00120008u) << "(ID[19:4] << 16) | 1 << ID[3:0]";
}

TEST(Lapic, X2apicReadOnlyAndAbsentRegistersFault)
{
    Lapic a(0x123, true);
    enter_x2apic(a);
    EXPECT_FALSE(a.write_msr(kMsrId, 0x5, 0));
    EXPECT_FALSE(a.write_msr(kMsrVersion, 0, 0));
    EXPECT_FALSE(a.write_msr(kMsrLdr, 0x00010001, 0));
    EXPECT_FALSE(a.write_msr(kMsrPpr, 0, 0));
    uint64_t v = 0;
    ASSERT_TRUE(a.read_msr(kMsrLdr, v, 0));
    EXPECT_EQ(v, 0x00120008u) << "unchanged by the refused write";
    ASSERT_TRUE(a.read_msr(kMsrId, v, 0));
    EXPECT_EQ(v, 0x123u);
    EXPECT_FALSE(a.read_msr(kMsrDfr, v, 0)) << "no DFR in x2APIC mode";
    EXPECT_FALSE(a.write_msr(kMsrDfr, 0xffffffff, 0));
    EXPECT_FALSE(a.read_msr(kMsrIcr2, v, 0)) << "no MSR 831H";
    EXPECT_FALSE(a.write_msr(kMsrIcr2, 0, 0));
    EXPECT_FALSE(a.read_msr(kMsrSelfIpi, v, 0)) << "SELF IPI is write-only";
    EXPECT_FALSE(a.read_msr(kMsrEoi, v, 0)) << "EOI is write-only";
}

TEST(Lapic, X2apicReservedBitsFault)
{
    Lapic a(1, true);
    enter_x2apic(a);
    EXPECT_TRUE(a.write_msr(kMsrSvr, 0x1ff, 0));
    EXPECT_FALSE(a.write_msr(kMsrTpr, 0x100, 0)) << "TPR bits 31:8 reserved";
    EXPECT_FALSE(a.write_msr(kMsrTpr, 1ull << 32, 0)) << "upper half of every MSR but the ICR reserved";
    EXPECT_FALSE(a.write_msr(kMsrEoi, 1, 0)) << "WRMSR of a non-zero value to EOI: #GP";
    EXPECT_TRUE(a.write_msr(kMsrEoi, 0, 0));
    EXPECT_FALSE(a.write_msr(kMsrEsr, 1, 0)) << "WRMSR of a non-zero value to ESR: #GP";
    EXPECT_FALSE(a.write_msr(kMsrSelfIpi, 0x141, 0)) << "SELF IPI bits 31:8 reserved";
    EXPECT_TRUE(a.write_msr(kMsrTpr, 0x50, 0));
    uint64_t v = 0;
    ASSERT_TRUE(a.read_msr(kMsrTpr, v, 0));
    EXPECT_EQ(v, 0x50u);
    ASSERT_TRUE(a.read_msr(kMsrPpr, v, 0));
    EXPECT_EQ(v, 0x50u);
}

TEST(Lapic, X2apicEoiMsrEndsTheInterrupt)
{
    Lapic a(1, true);
    enter_x2apic(a);
    ASSERT_TRUE(a.write_msr(kMsrSvr, 0x1ff, 0));
    a.accept(fixed(0x92, true));
    ASSERT_EQ(a.acknowledge(), 0x92);
    EXPECT_FALSE(a.write_msr(kMsrEoi, 1, 0));
    uint64_t v = 0;
    ASSERT_TRUE(a.read_msr(0x810 + 0x92 / 32, v, 0));  // ISR
    EXPECT_EQ(v, 0x00040000u) << "the refused EOI left ISR alone";
    EXPECT_TRUE(a.take_outputs().level_eois.empty());
    ASSERT_TRUE(a.write_msr(kMsrEoi, 0, 0));
    ASSERT_TRUE(a.read_msr(0x810 + 0x92 / 32, v, 0));
    EXPECT_EQ(v, 0u);
    EXPECT_EQ(a.take_outputs().level_eois, std::vector<uint8_t>{0x92});
}

TEST(Lapic, X2apicIcrIsOne64BitMsr)
{
    Lapic a(0x123, true);
    enter_x2apic(a);
    ASSERT_TRUE(a.write_msr(kMsrSvr, 0x1ff, 0));
    ASSERT_TRUE(a.write_msr(kMsrIcr, (0x1234ull << 32) | kAssert | kDmFixed | 0x31, 0));
    const LapicOutputs out = a.take_outputs();
    ASSERT_EQ(out.ipis.size(), 1u);
    EXPECT_EQ(out.ipis[0], (ApicMessage{.vector = 0x31,
                                        .mode = ApicDeliveryMode::kFixed,
                                        .destination = 0x1234,
                                        .logical = false,
                                        .level = false,
                                        .assert = true,
                                        .shorthand = ApicShorthand::kNone,
                                        .source_id = 0x123}));
    uint64_t v = 0;
    ASSERT_TRUE(a.read_msr(kMsrIcr, v, 0));
    EXPECT_EQ(v, (0x1234ull << 32) | 0x4031u);

    ASSERT_TRUE(a.write_msr(kMsrIcr, (0x00120008ull << 32) | kLogical | kAssert | 0x32, 0));
    const LapicOutputs out2 = a.take_outputs();
    ASSERT_EQ(out2.ipis.size(), 1u);
    EXPECT_TRUE(out2.ipis[0].logical);
    EXPECT_EQ(out2.ipis[0].destination, 0x00120008u);
    EXPECT_EQ(out2.ipis[0].vector, 0x32);
}

TEST(Lapic, X2apicSelfIpiMakesItsVectorPending)
{
    Lapic a(0x123, true);
    enter_x2apic(a);
    ASSERT_TRUE(a.write_msr(kMsrSvr, 0x1ff, 0));
    ASSERT_TRUE(a.write_msr(kMsrSelfIpi, 0x45, 0));
    drain_to_self(a);
    EXPECT_TRUE(x2_irr(a, 0x45));
    EXPECT_FALSE(x2_irr(a, 0x44));
    EXPECT_EQ(a.pending_vector().value_or(0), 0x45);
    EXPECT_EQ(a.acknowledge(), 0x45);
    EXPECT_FALSE(a.pending_vector().has_value()) << "edge, once";
}

TEST(Lapic, X2apicSelfIpiIllegalVectorIsASendError)
{
    Lapic a(0x123, true);
    enter_x2apic(a);
    ASSERT_TRUE(a.write_msr(kMsrSvr, 0x1ff, 0));
    ASSERT_TRUE(a.write_msr(kMsrEsr, 0, 0));
    a.write_msr(kMsrSelfIpi, 0x05, 0);
    drain_to_self(a);
    EXPECT_EQ(x2_read_esr(a) & 0x20u, 0x20u) << "bit 5: send illegal vector";
    EXPECT_FALSE(a.pending_vector().has_value());
}

TEST(Lapic, X2apicLogicalDestinationIsClusterAndBitmap)
{
    Lapic a(0x123, true);
    enter_x2apic(a);
    EXPECT_TRUE(a.matches(0x00120008, true));
    EXPECT_TRUE(a.matches(0x0012000c, true)) << "members 2 and 3 of cluster 12H";
    EXPECT_FALSE(a.matches(0x00120004, true));
    EXPECT_FALSE(a.matches(0x00130008, true)) << "another cluster";
    EXPECT_TRUE(a.matches(0xffffffff, true));
    EXPECT_TRUE(a.matches(0x123, false));
    EXPECT_FALSE(a.matches(0x23, false));
    EXPECT_TRUE(a.matches(0xffffffff, false));
    EXPECT_FALSE(a.matches(0xff, false)) << "FFH is an ordinary ID in x2APIC mode";
}

TEST(Lapic, X2apicModeDoesNotDecodeMmio)
{
    Lapic a(0x123, true);
    enter_x2apic(a);
    EXPECT_EQ(a.read_mmio(kId, 0), 0u);
    EXPECT_EQ(a.read_mmio(kVersion, 0), 0u);
    EXPECT_EQ(a.read_mmio(kDfr, 0), 0u);
    a.write_mmio(kTpr, 0x50, 0);
    uint64_t v = 1;
    ASSERT_TRUE(a.read_msr(kMsrTpr, v, 0));
    EXPECT_EQ(v, 0u) << "the MMIO write was dropped";
}

TEST(Lapic, MsrAccessFaultsInXapicMode)
{
    Lapic a(0, true);
    uint64_t v = 0;
    EXPECT_FALSE(a.read_msr(kMsrTpr, v, 0));
    EXPECT_FALSE(a.write_msr(kMsrTpr, 0x50, 0));
    EXPECT_EQ(a.read_mmio(kTpr, 0), 0u);
    EXPECT_FALSE(a.write_msr(kMsrSelfIpi, 0x45, 0));
}

// ---------------------------------------------------------------------------
// 11.11: MSI.

TEST(Lapic, MsiDecodesAddressAndData)
{
    ApicMessage m = apic_message_from_msi(0xfee01000, 0x4031);
    EXPECT_EQ(m.destination, 1u);
    EXPECT_FALSE(m.logical);
    EXPECT_EQ(m.vector, 0x31);
    EXPECT_EQ(m.mode, ApicDeliveryMode::kFixed);
    EXPECT_FALSE(m.level) << "data bit 15 = 0: edge";
    EXPECT_TRUE(m.assert);
    EXPECT_EQ(m.shorthand, ApicShorthand::kNone);

    m = apic_message_from_msi(0xfee0300c, 0xc141);  // dest 3, RH, DM logical; level assert, lowest priority
    EXPECT_EQ(m.destination, 3u);
    EXPECT_TRUE(m.logical);
    EXPECT_EQ(m.vector, 0x41);
    EXPECT_EQ(m.mode, ApicDeliveryMode::kLowestPriority);
    EXPECT_TRUE(m.level);
    EXPECT_TRUE(m.assert);

    m = apic_message_from_msi(0xfeeff000, 0x4400);
    EXPECT_EQ(m.destination, 0xffu);
    EXPECT_EQ(m.mode, ApicDeliveryMode::kNmi);

    m = apic_message_from_msi(0xfee00000, 0x4700);
    EXPECT_EQ(m.mode, ApicDeliveryMode::kExtInt);
}

// ---------------------------------------------------------------------------
// 11.5.1: LINT0 / LINT1.

TEST(Lapic, Lint0ExtIntFollowsTheLvt)
{
    Lapic a(0, true);
    EXPECT_FALSE(a.lint0_accepts_extint()) << "LVT LINT0 masked at reset";
    enable(a);
    a.write_mmio(kLvtLint0, kDmExtInt, 0);
    a.set_lint(0, true);
    EXPECT_TRUE(a.lint0_accepts_extint());
    EXPECT_TRUE(all_zero(a, kIrr)) << "ExtINT bypasses IRR";
    a.write_mmio(kLvtLint0, kMasked | kDmExtInt, 0);
    EXPECT_FALSE(a.lint0_accepts_extint());
    a.write_mmio(kLvtLint0, kDmNmi, 0);
    EXPECT_FALSE(a.lint0_accepts_extint());
    EXPECT_TRUE(a.lint0_is_nmi());
}

TEST(Lapic, HardwareDisabledApicPassesExtIntThrough)
{
    Lapic a(0, true);
    a.set_apic_base(0xfee00000 | kBsp);  // EN = 0
    EXPECT_TRUE(a.lint0_accepts_extint());
}

TEST(Lapic, Lint1NmiOnRisingEdge)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kLvtLint1, kDmNmi, 0);
    a.set_lint(1, true);
    EXPECT_TRUE(a.nmi_pending());
    EXPECT_TRUE(a.take_nmi());
    EXPECT_FALSE(a.nmi_pending());
    EXPECT_FALSE(a.take_nmi());
    a.set_lint(1, true);
    EXPECT_FALSE(a.nmi_pending()) << "no edge";
    a.set_lint(1, false);
    EXPECT_FALSE(a.nmi_pending());
    a.set_lint(1, true);
    EXPECT_TRUE(a.nmi_pending());
    EXPECT_TRUE(all_zero(a, kIrr));
}

TEST(Lapic, MaskedLint1IgnoresThePin)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kLvtLint1, kMasked | kDmNmi, 0);
    a.set_lint(1, true);
    EXPECT_FALSE(a.nmi_pending());
}

TEST(Lapic, Lint0FixedEdgeSetsIrr)
{
    Lapic a(0, true);
    enable(a);
    a.write_mmio(kLvtLint0, kDmFixed | 0x31, 0);
    a.set_lint(0, true);
    EXPECT_TRUE(irr(a, 0x31));
    EXPECT_FALSE(tmr(a, 0x31));
    EXPECT_EQ(a.acknowledge(), 0x31);
    a.write_mmio(kEoi, 0, 0);
    a.set_lint(0, true);
    EXPECT_FALSE(irr(a, 0x31)) << "still high: no new edge";
}

// ---------------------------------------------------------------------------
// 11.4.7.3, 11.4.3: INIT and reset.

TEST(Lapic, InitMessageIsPendingUntilTaken)
{
    Lapic a(1, false);
    enable(a);
    a.accept(of_mode(ApicDeliveryMode::kInit));
    EXPECT_TRUE(a.init_pending());
    EXPECT_EQ(a.stats().inits, 1u);
    EXPECT_TRUE(a.take_init());
    EXPECT_FALSE(a.init_pending());
    EXPECT_FALSE(a.take_init());
    EXPECT_TRUE(all_zero(a, kIrr)) << "INIT bypasses IRR";
}

TEST(Lapic, NmiMessageIsPendingUntilTaken)
{
    Lapic a(1, false);
    enable(a);
    a.accept(of_mode(ApicDeliveryMode::kNmi));
    EXPECT_TRUE(a.nmi_pending());
    EXPECT_EQ(a.stats().nmis, 1u);
    EXPECT_TRUE(a.take_nmi());
    EXPECT_FALSE(a.nmi_pending());
    EXPECT_TRUE(all_zero(a, kIrr)) << "NMI bypasses IRR";
}

TEST(Lapic, ResetKeepsIdAndApicBase)
{
    Lapic a(5, false);
    a.set_apic_base(0xfed00000 | kEn);
    enable(a);
    a.write_mmio(kTpr, 0x40, 0);
    a.write_mmio(kLdr, 0x08000000, 0);
    a.write_mmio(kDfr, 0x0fffffff, 0);
    a.write_mmio(kLvtLint0, kDmExtInt, 0);
    a.write_mmio(kTimerDivide, 0xb, 0);
    a.write_mmio(kLvtTimer, 0xec, 0);
    a.write_mmio(kTimerInitial, 1000, 0);
    a.accept(fixed(0x61));
    a.accept(fixed(0x41));
    ASSERT_EQ(a.acknowledge(), 0x61);
    a.accept(of_mode(ApicDeliveryMode::kNmi));

    a.reset();
    EXPECT_EQ(a.read_mmio(kId, 0), 0x05000000u);
    EXPECT_EQ(a.apic_base(), 0xfed00800u);
    EXPECT_EQ(a.read_mmio(kTpr, 0), 0u);
    EXPECT_EQ(a.read_mmio(kLdr, 0), 0u);
    EXPECT_EQ(a.read_mmio(kDfr, 0), 0xffffffffu);
    EXPECT_EQ(a.read_mmio(kSvr, 0), 0xffu);
    EXPECT_EQ(a.read_mmio(kLvtLint0, 0), 0x00010000u);
    EXPECT_EQ(a.read_mmio(kLvtTimer, 0), 0x00010000u);
    EXPECT_EQ(a.read_mmio(kTimerInitial, 0), 0u);
    EXPECT_EQ(a.read_mmio(kTimerDivide, 0), 0u);
    EXPECT_FALSE(a.next_timer_ns().has_value());
    EXPECT_TRUE(all_zero(a, kIrr));
    EXPECT_TRUE(all_zero(a, kIsr));
    EXPECT_FALSE(a.nmi_pending());
    EXPECT_EQ(a.read_mmio(kVersion, 0), 0x01050014u);
}

TEST(Lapic, ResetInX2apicModeStaysInX2apicMode)
{
    Lapic a(0x123, true);
    enter_x2apic(a);
    ASSERT_TRUE(a.write_msr(kMsrSvr, 0x1ff, 0));
    a.reset();
    EXPECT_TRUE(a.x2apic_mode());
    uint64_t v = 0;
    ASSERT_TRUE(a.read_msr(kMsrId, v, 0));
    EXPECT_EQ(v, 0x123u);
    ASSERT_TRUE(a.read_msr(kMsrSvr, v, 0));
    EXPECT_EQ(v, 0xffu);
    ASSERT_TRUE(a.read_msr(kMsrLdr, v, 0));
    EXPECT_EQ(v, 0x00120008u) << "the logical x2APIC ID is derived from the ID, not cleared";
}

TEST(Lapic, GlobalDisableResetsTheApicState)
{
    Lapic a(2, false);
    enable(a);
    a.write_mmio(kTpr, 0x40, 0);
    a.accept(fixed(0x41));
    a.set_apic_base(0xfee00000);
    EXPECT_FALSE(a.hardware_enabled());
    a.set_apic_base(0xfee00000 | kEn);
    EXPECT_TRUE(a.hardware_enabled());
    EXPECT_EQ(a.read_mmio(kTpr, 0), 0u);
    EXPECT_EQ(a.read_mmio(kSvr, 0), 0xffu);
    EXPECT_TRUE(all_zero(a, kIrr));
    EXPECT_EQ(a.read_mmio(kId, 0), 0x02000000u);
}

TEST(Lapic, MisalignedMmioReadsZero)
{
    Lapic a(3, true);
    EXPECT_EQ(a.read_mmio(kId + 4, 0), 0u);
    EXPECT_GE(a.stats().odd_accesses, 1u);
}


// The owner takes INIT and SIPI when the AP's thread next looks, so INIT,
// SIPI, SIPI may all be pending at once (Linux's start-up sequence on a busy
// host): carrying out the INIT must not lose the SIPIs that followed it.
TEST(Lapic, SipiAfterInitSurvivesTheInitReset)
{
    Lapic a(1, false);
    a.accept(of_mode(ApicDeliveryMode::kInit));
    a.accept(of_mode(ApicDeliveryMode::kStartup, 0x9a));
    ASSERT_TRUE(a.take_init());
    a.reset();
    EXPECT_EQ(a.take_sipi().value_or(0), 0x9a);
}

TEST(Lapic, SipiBeforeInitIsVoid)
{
    Lapic a(1, false);
    a.accept(of_mode(ApicDeliveryMode::kStartup, 0x9a));
    a.accept(of_mode(ApicDeliveryMode::kInit));
    EXPECT_FALSE(a.sipi_pending());
}

}  // namespace
}  // namespace kvmini

namespace kvmini {
namespace {
// Linux sends SIPI twice; if the owner looks only after both, the first one
// is the one that started the CPU.
TEST(Lapic, FirstOfTwoPendingSipisCounts)
{
    Lapic a(1, false);
    a.accept(of_mode(ApicDeliveryMode::kStartup, 0x9a));
    a.accept(of_mode(ApicDeliveryMode::kStartup, 0x9b));
    EXPECT_EQ(a.take_sipi().value_or(0), 0x9a);
    EXPECT_FALSE(a.sipi_pending());
}
}  // namespace
}  // namespace kvmini

namespace kvmini {
namespace {
// 11.8.3.1: what only the TPR keeps back (not the in-service class).
TEST(Lapic, VectorHeldByTprAlone)
{
    Lapic a(0, true);
    a.write_mmio(Lapic::kRegSvr, 0x1ff, 0);
    a.accept(ApicMessage{.vector = 0x45});
    EXPECT_FALSE(a.vector_held_by_tpr());
    a.write_mmio(Lapic::kRegTpr, 0x50, 0);
    EXPECT_TRUE(a.vector_held_by_tpr());
    a.write_mmio(Lapic::kRegTpr, 0x00, 0);
    a.accept(ApicMessage{.vector = 0x61});
    EXPECT_EQ(a.acknowledge(), 0x61);
    a.write_mmio(Lapic::kRegTpr, 0x50, 0);
    EXPECT_FALSE(a.vector_held_by_tpr()) << "0x45 waits on the in-service 0x61 too";
}
}  // namespace
}  // namespace kvmini

namespace kvmini {
namespace {
// 11.5.4: the periodic count reloads by itself; reading it must not depend
// on whether the owner has processed the expiry (advance_time) yet.
TEST(Lapic, PeriodicCurrentCountReloadsBeforeTheOwnerLooks)
{
    Lapic a(0, true);
    a.write_mmio(Lapic::kRegSvr, 0x1ff, 0);
    a.write_mmio(Lapic::kRegTimerDivide, 0xb, 0);                    // divide by 1: 1 count per ns
    a.write_mmio(Lapic::kRegLvtTimer, (1u << 17) | (1u << 16) | 0x30, 0);  // periodic, masked
    a.write_mmio(Lapic::kRegTimerInitial, 1000, 0);
    EXPECT_EQ(a.read_mmio(Lapic::kRegTimerCurrent, 2250), 750u) << "2.25 periods in: 750 counts left";
    EXPECT_EQ(a.read_mmio(Lapic::kRegTimerCurrent, 999), 1u);
    a.write_mmio(Lapic::kRegLvtTimer, 0x30, 0);  // one-shot, same count
    a.write_mmio(Lapic::kRegTimerInitial, 1000, 0);
    EXPECT_EQ(a.read_mmio(Lapic::kRegTimerCurrent, 2250), 0u) << "a one-shot count stays at 0";
}
}  // namespace
}  // namespace kvmini

namespace kvmini {
namespace {
// apic_bus.h: the one MSI encoding, both ways (SDM 11.11.1, 11.11.2).
TEST(ApicBus, MsiEncodingRoundTrips)
{
    const ApicMessage m{.vector = 0x45, .mode = ApicDeliveryMode::kLowestPriority, .destination = 0x0f,
                        .logical = true, .level = true, .assert = true};
    const MsiMessage msi = msi_from_apic_message(m);
    EXPECT_EQ(msi.address, 0xfee0f004u);
    EXPECT_EQ(msi.data, 0x45u | (1u << 8) | (1u << 14) | (1u << 15));
    EXPECT_EQ(apic_message_from_msi(msi.address, msi.data), m);
}
}  // namespace
}  // namespace kvmini
