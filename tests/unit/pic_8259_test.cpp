// Pic8259Pair against the Intel 8259A datasheet. Command bytes are written as
// the datasheet's bit patterns, not through the model's constants.
#include "irqchip/models/pic_8259.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "devices/bus.h"

namespace kvmini {
namespace {

// Linux's init_8259A(): ICW1 = 0x11 (edge, cascade, ICW4 needed), ICW2 =
// vector base, ICW3 = 0x04 (master: slave on IR2) / 0x02 (slave ID 2), ICW4 =
// 0x01 (8086 mode) or 0x03 (8086 + AEOI).
void init_pair(Pic8259Pair& pic, uint8_t icw4_master = 0x01, uint8_t icw4_slave = 0x01)
{
    pic.write_port(0x20, 0x11);
    pic.write_port(0x21, 0x20);
    pic.write_port(0x21, 0x04);
    pic.write_port(0x21, icw4_master);
    pic.write_port(0xa0, 0x11);
    pic.write_port(0xa1, 0x28);
    pic.write_port(0xa1, 0x02);
    pic.write_port(0xa1, icw4_slave);
}

constexpr uint8_t kNonSpecificEoi = 0x20;   // OCW2 R=0 SL=0 EOI=1
constexpr uint8_t kRotateNsEoi = 0xa0;      // OCW2 R=1 SL=0 EOI=1
constexpr uint8_t kSpecificEoi = 0x60;      // | L
constexpr uint8_t kRotateSpecificEoi = 0xe0;// | L
constexpr uint8_t kSetPriority = 0xc0;      // | L (L becomes lowest)
constexpr uint8_t kRotateAeoiSet = 0x80;
constexpr uint8_t kRotateAeoiClear = 0x00;
constexpr uint8_t kReadIrr = 0x0a;          // OCW3 RR=1 RIS=0
constexpr uint8_t kReadIsr = 0x0b;          // OCW3 RR=1 RIS=1
constexpr uint8_t kPoll = 0x0c;             // OCW3 P=1
constexpr uint8_t kSetSmm = 0x68;           // OCW3 ESMM=1 SMM=1
constexpr uint8_t kResetSmm = 0x48;         // OCW3 ESMM=1 SMM=0

void pulse(Pic8259Pair& pic, unsigned irq)
{
    pic.set_irq(irq, true);
    pic.set_irq(irq, false);
}

TEST(Pic8259, PowerOnStateIsWhatTheBiosLeaves)
{
    Pic8259Pair pic;
    EXPECT_EQ(pic.vector_base(0), 0x08);
    EXPECT_EQ(pic.vector_base(1), 0x70);
    EXPECT_EQ(pic.read_port(0x21), 0xfb);
    EXPECT_EQ(pic.read_port(0xa1), 0xff);
    EXPECT_FALSE(pic.output());
}

TEST(Pic8259, InitializationSequenceSetsVectorsAndClearsImr)
{
    Pic8259Pair pic;
    init_pair(pic);
    EXPECT_EQ(pic.vector_base(0), 0x20);
    EXPECT_EQ(pic.vector_base(1), 0x28);
    EXPECT_EQ(pic.read_port(0x21), 0x00);  // ICW1 clears IMR
    EXPECT_EQ(pic.read_port(0xa1), 0x00);
    EXPECT_EQ(pic.stats().odd_writes, 0u);
    pic.write_port(0x21, 0xb8);  // OCW1 after init
    EXPECT_EQ(pic.read_port(0x21), 0xb8);
}

TEST(Pic8259, EdgeRequestIsAcknowledgedWithItsVector)
{
    Pic8259Pair pic;
    init_pair(pic);
    pulse(pic, 1);
    EXPECT_TRUE(pic.output());
    EXPECT_EQ(pic.irr(0), 0x02);
    EXPECT_EQ(pic.acknowledge(), 0x21);
    EXPECT_EQ(pic.irr(0), 0x00);
    EXPECT_EQ(pic.isr(0), 0x02);
    EXPECT_FALSE(pic.output());
    pic.write_port(0x20, kNonSpecificEoi);
    EXPECT_EQ(pic.isr(0), 0x00);
    EXPECT_EQ(pic.stats().eois, 1u);
}

TEST(Pic8259, EdgeModeLatchesOnlyTheRisingEdge)
{
    Pic8259Pair pic;
    init_pair(pic);
    pic.set_irq(4, true);
    EXPECT_EQ(pic.acknowledge(), 0x24);
    pic.write_port(0x20, kNonSpecificEoi);
    // The input is still high: no new edge, no new request.
    pic.set_irq(4, true);
    EXPECT_EQ(pic.irr(0), 0x00);
    EXPECT_FALSE(pic.output());
    pic.set_irq(4, false);
    pic.set_irq(4, true);
    EXPECT_EQ(pic.irr(0), 0x10);
}

TEST(Pic8259, EdgeArrivingWhileThePreviousIsPendingIsLost)
{
    Pic8259Pair pic;
    init_pair(pic);
    pulse(pic, 5);
    pulse(pic, 5);  // IRR bit already set: the second edge merges into it
    EXPECT_EQ(pic.acknowledge(), 0x25);
    pic.write_port(0x20, kNonSpecificEoi);
    EXPECT_FALSE(pic.output());
    EXPECT_EQ(pic.acknowledge(), 0x27);  // nothing left: spurious
    EXPECT_EQ(pic.stats().spurious_irq7, 1u);
}

TEST(Pic8259, EdgeDuringServiceIsHeldUntilEoi)
{
    Pic8259Pair pic;
    init_pair(pic);
    pulse(pic, 3);
    EXPECT_EQ(pic.acknowledge(), 0x23);
    pulse(pic, 3);  // IR3 is in service: latched in IRR, blocked
    EXPECT_EQ(pic.irr(0), 0x08);
    EXPECT_FALSE(pic.output());
    pic.write_port(0x20, kNonSpecificEoi);
    EXPECT_TRUE(pic.output());
    EXPECT_EQ(pic.acknowledge(), 0x23);
}

TEST(Pic8259, FullyNestedPriority)
{
    Pic8259Pair pic;
    init_pair(pic);
    pulse(pic, 5);
    pulse(pic, 3);
    EXPECT_EQ(pic.acknowledge(), 0x23);  // IR3 beats IR5
    EXPECT_FALSE(pic.output());          // IR5 is lower than IR3 in service
    pulse(pic, 1);
    EXPECT_TRUE(pic.output());           // IR1 is higher: nests
    EXPECT_EQ(pic.acknowledge(), 0x21);
    EXPECT_EQ(pic.isr(0), 0x0a);
    pic.write_port(0x20, kNonSpecificEoi);  // clears the highest: IR1
    EXPECT_EQ(pic.isr(0), 0x08);
    EXPECT_FALSE(pic.output());
    pic.write_port(0x20, kNonSpecificEoi);  // IR3
    EXPECT_EQ(pic.isr(0), 0x00);
    EXPECT_EQ(pic.acknowledge(), 0x25);
}

TEST(Pic8259, MaskedRequestStaysInIrrUntilUnmasked)
{
    Pic8259Pair pic;
    init_pair(pic);
    pic.write_port(0x21, 0x40);  // mask IR6
    pulse(pic, 6);
    EXPECT_EQ(pic.irr(0), 0x40);
    EXPECT_FALSE(pic.output());
    pic.write_port(0x21, 0x00);
    EXPECT_TRUE(pic.output());
    EXPECT_EQ(pic.acknowledge(), 0x26);
}

TEST(Pic8259, RotateOnNonSpecificEoiMakesTheServedLevelLowest)
{
    Pic8259Pair pic;
    init_pair(pic);
    pulse(pic, 0);
    EXPECT_EQ(pic.acknowledge(), 0x20);
    pic.write_port(0x20, kRotateNsEoi);  // IR0 becomes lowest, IR1 highest
    pulse(pic, 0);
    pulse(pic, 4);
    EXPECT_EQ(pic.acknowledge(), 0x24);
    pic.write_port(0x20, kRotateNsEoi);  // IR4 lowest, IR5 highest: IR0 next
    EXPECT_EQ(pic.acknowledge(), 0x20);
}

TEST(Pic8259, SetPriorityCommand)
{
    Pic8259Pair pic;
    init_pair(pic);
    pic.write_port(0x20, kSetPriority | 3);  // IR3 lowest, IR4 highest
    pulse(pic, 0);
    pulse(pic, 3);
    pulse(pic, 6);
    EXPECT_EQ(pic.acknowledge(), 0x26);
    pic.write_port(0x20, kNonSpecificEoi);
    EXPECT_EQ(pic.acknowledge(), 0x20);
    pic.write_port(0x20, kNonSpecificEoi);
    EXPECT_EQ(pic.acknowledge(), 0x23);
    pic.write_port(0x20, kNonSpecificEoi);
    // While IR6 (priority 2 of 8 here) is in service, IR3 (lowest) is blocked
    // and IR5 (higher) is not.
    pulse(pic, 6);
    EXPECT_EQ(pic.acknowledge(), 0x26);
    pulse(pic, 3);
    EXPECT_FALSE(pic.output());
    pulse(pic, 5);
    EXPECT_TRUE(pic.output());
}

TEST(Pic8259, RotateOnSpecificEoi)
{
    Pic8259Pair pic;
    init_pair(pic);
    pulse(pic, 6);
    EXPECT_EQ(pic.acknowledge(), 0x26);
    pic.write_port(0x20, kRotateSpecificEoi | 6);  // clears IS6, IR6 lowest
    EXPECT_EQ(pic.isr(0), 0x00);
    pulse(pic, 0);
    pulse(pic, 7);
    EXPECT_EQ(pic.acknowledge(), 0x27);  // IR7 now highest
    EXPECT_EQ(pic.isr(0), 0x80);
    EXPECT_EQ(pic.stats().spurious_irq7, 0u);
}

TEST(Pic8259, SpecificEoiClearsOnlyThatLevel)
{
    Pic8259Pair pic;
    init_pair(pic);
    pulse(pic, 5);
    EXPECT_EQ(pic.acknowledge(), 0x25);
    pulse(pic, 3);
    EXPECT_EQ(pic.acknowledge(), 0x23);
    EXPECT_EQ(pic.isr(0), 0x28);
    pic.write_port(0x20, kSpecificEoi | 5);
    EXPECT_EQ(pic.isr(0), 0x08);
    pic.write_port(0x20, kSpecificEoi | 1);  // not in service: odd, no effect
    EXPECT_EQ(pic.isr(0), 0x08);
    EXPECT_EQ(pic.stats().eois, 2u);
    EXPECT_EQ(pic.stats().odd_writes, 1u);
}

TEST(Pic8259, AutomaticEoiLeavesNothingInService)
{
    std::vector<unsigned> eois;
    Pic8259Pair pic({}, [&](unsigned irq) { eois.push_back(irq); });
    init_pair(pic, 0x03, 0x03);
    pulse(pic, 1);
    EXPECT_EQ(pic.acknowledge(), 0x21);
    EXPECT_EQ(pic.isr(0), 0x00);
    EXPECT_EQ(eois, (std::vector<unsigned>{1}));
    EXPECT_EQ(pic.stats().eois, 0u);  // AEOI is not an EOI command
    // Without rotation priority stays fixed: IR0 before IR4.
    pulse(pic, 4);
    pulse(pic, 0);
    EXPECT_EQ(pic.acknowledge(), 0x20);
    EXPECT_EQ(pic.acknowledge(), 0x24);
}

TEST(Pic8259, RotateInAutomaticEoiMode)
{
    Pic8259Pair pic;
    init_pair(pic, 0x03, 0x01);
    pic.write_port(0x20, kRotateAeoiSet);
    pulse(pic, 1);
    EXPECT_EQ(pic.acknowledge(), 0x21);  // IR1 becomes lowest, IR2 highest
    pulse(pic, 0);
    pulse(pic, 5);
    EXPECT_EQ(pic.acknowledge(), 0x25);  // IR5 outranks IR0 now
    EXPECT_EQ(pic.acknowledge(), 0x20);
    pic.write_port(0x20, kRotateAeoiClear);
    // The last rotation (after IR0) made IR1 highest.
    pulse(pic, 7);
    pulse(pic, 3);
    EXPECT_EQ(pic.acknowledge(), 0x23);
    pulse(pic, 3);
    // No rotation after IR3 (IR1 still highest): IR3 before IR7. Rotating
    // would have made IR4 highest and IR7 win.
    EXPECT_EQ(pic.acknowledge(), 0x23);
    EXPECT_EQ(pic.acknowledge(), 0x27);
}

TEST(Pic8259, SpecialMaskModeEnablesLowerLevels)
{
    Pic8259Pair pic;
    init_pair(pic);
    pulse(pic, 3);
    EXPECT_EQ(pic.acknowledge(), 0x23);
    pulse(pic, 5);
    EXPECT_FALSE(pic.output());  // IR5 is below IR3 in service
    pic.write_port(0x21, 0x08);  // mask IR3
    pic.write_port(0x20, kSetSmm);
    EXPECT_TRUE(pic.output());   // the masked in-service level no longer blocks
    EXPECT_EQ(pic.acknowledge(), 0x25);
    EXPECT_EQ(pic.isr(0), 0x28);
    // In special mask mode a non-specific EOI skips the masked IS3.
    pic.write_port(0x20, kNonSpecificEoi);
    EXPECT_EQ(pic.isr(0), 0x08);
    pic.write_port(0x20, kResetSmm);
    pic.write_port(0x21, 0x00);
    pulse(pic, 5);
    EXPECT_FALSE(pic.output());  // IS3 blocks again
    pic.write_port(0x20, kNonSpecificEoi);
    EXPECT_EQ(pic.acknowledge(), 0x25);
}

TEST(Pic8259, ReadIrrAndIsrThroughOcw3)
{
    Pic8259Pair pic;
    init_pair(pic);
    pulse(pic, 4);
    pulse(pic, 6);
    EXPECT_EQ(pic.read_port(0x20), 0x50);  // IRR after ICW1
    pic.acknowledge();
    pic.write_port(0x20, kReadIsr);
    EXPECT_EQ(pic.read_port(0x20), 0x10);
    EXPECT_EQ(pic.read_port(0x20), 0x10);  // the choice persists
    pic.write_port(0x20, kReadIrr);
    EXPECT_EQ(pic.read_port(0x20), 0x40);
}

TEST(Pic8259, PollCommandActsAsAcknowledge)
{
    Pic8259Pair pic;
    init_pair(pic);
    pic.write_port(0x20, kPoll);
    EXPECT_EQ(pic.read_port(0x20), 0x00);  // I = 0: nothing requested
    pulse(pic, 6);
    pulse(pic, 4);
    pic.write_port(0x20, kPoll);
    EXPECT_EQ(pic.read_port(0x20), 0x84);  // I = 1, W = 4
    EXPECT_EQ(pic.isr(0), 0x10);
    EXPECT_EQ(pic.irr(0), 0x40);
    EXPECT_EQ(pic.read_port(0x20), 0x40);  // poll is one-shot: IRR again
    EXPECT_EQ(pic.stats().polls, 2u);
    EXPECT_EQ(pic.stats().acknowledges, 0u);
}

TEST(Pic8259, SpuriousIrq7WhenALevelRequestFallsBeforeInta)
{
    Pic8259Pair pic;
    init_pair(pic);
    pic.write_port(0x4d0, 0x20);  // IRQ5 level
    pic.set_irq(5, true);
    EXPECT_TRUE(pic.output());
    pic.set_irq(5, false);  // request withdrawn before INTA
    EXPECT_FALSE(pic.output());
    EXPECT_EQ(pic.acknowledge(), 0x27);
    EXPECT_EQ(pic.isr(0), 0x00);  // a spurious IR7 sets no IS bit
    EXPECT_EQ(pic.stats().spurious_irq7, 1u);
}

TEST(Pic8259, SpuriousIrq7WhenTheRequestIsMaskedBeforeInta)
{
    Pic8259Pair pic;
    init_pair(pic);
    pulse(pic, 4);
    EXPECT_TRUE(pic.output());
    pic.write_port(0x21, 0x10);
    EXPECT_FALSE(pic.output());
    EXPECT_EQ(pic.acknowledge(), 0x27);
    EXPECT_EQ(pic.irr(0), 0x10);  // still latched, masked
    EXPECT_EQ(pic.stats().spurious_irq7, 1u);
}

TEST(Pic8259, SpuriousIrq15WhenTheSlaveRequestFallsBeforeInta)
{
    Pic8259Pair pic;
    init_pair(pic);
    pic.write_port(0x4d1, 0x04);  // IRQ10 level
    pic.set_irq(10, true);
    EXPECT_TRUE(pic.output());
    EXPECT_EQ(pic.irr(0), 0x04);  // the slave's INT latched on IR2
    pic.set_irq(10, false);
    EXPECT_TRUE(pic.output());    // the master's edge latch keeps IR2
    EXPECT_EQ(pic.acknowledge(), 0x2f);
    EXPECT_EQ(pic.isr(0), 0x04);  // the master needs its EOI...
    EXPECT_EQ(pic.isr(1), 0x00);  // ...the slave does not
    EXPECT_EQ(pic.stats().spurious_irq15, 1u);
    EXPECT_EQ(pic.stats().spurious_irq7, 0u);
}

TEST(Pic8259, CascadeToTheSlave)
{
    Pic8259Pair pic;
    init_pair(pic);
    pulse(pic, 12);
    EXPECT_TRUE(pic.output());
    EXPECT_EQ(pic.irr(1), 0x10);
    EXPECT_EQ(pic.acknowledge(), 0x2c);
    EXPECT_EQ(pic.isr(0), 0x04);
    EXPECT_EQ(pic.isr(1), 0x10);
    // IR2 in service on the master: IRQ3 blocked, IRQ1 nests.
    pulse(pic, 3);
    EXPECT_FALSE(pic.output());
    pulse(pic, 1);
    EXPECT_EQ(pic.acknowledge(), 0x21);
    pic.write_port(0x20, kNonSpecificEoi);  // IRQ1
    // A higher slave request (IRQ9) is blocked behind the master's IS2 in
    // plain fully nested mode.
    pulse(pic, 9);
    EXPECT_EQ(pic.irr(1), 0x02);
    EXPECT_FALSE(pic.output());
    pic.write_port(0xa0, kNonSpecificEoi);  // IRQ12 on the slave
    pic.write_port(0x20, kNonSpecificEoi);  // IR2 on the master
    EXPECT_TRUE(pic.output());
    // IRQ3 (master IR3) vs IRQ9 (master IR2): IR2 wins.
    EXPECT_EQ(pic.acknowledge(), 0x29);
}

TEST(Pic8259, SlaveRequestsArriveOneAfterTheOther)
{
    Pic8259Pair pic;
    init_pair(pic);
    pulse(pic, 8);
    pulse(pic, 14);
    EXPECT_EQ(pic.acknowledge(), 0x28);
    EXPECT_FALSE(pic.output());
    pic.write_port(0xa0, kNonSpecificEoi);
    pic.write_port(0x20, kNonSpecificEoi);
    EXPECT_TRUE(pic.output());
    EXPECT_EQ(pic.acknowledge(), 0x2e);
}

TEST(Pic8259, AutomaticEoiOnTheSlaveRaisesTheNextRequestAtOnce)
{
    Pic8259Pair pic;
    init_pair(pic, 0x03, 0x03);
    pulse(pic, 8);
    pulse(pic, 14);
    EXPECT_EQ(pic.acknowledge(), 0x28);
    EXPECT_TRUE(pic.output());  // INTA ended the slave's INT; IRQ14 raises it anew
    EXPECT_EQ(pic.acknowledge(), 0x2e);
    EXPECT_FALSE(pic.output());
}

TEST(Pic8259, SpecialFullyNestedModeLetsHigherSlaveRequestsThrough)
{
    Pic8259Pair pic;
    init_pair(pic, 0x11, 0x01);  // master ICW4: SFNM + 8086
    pulse(pic, 12);
    EXPECT_EQ(pic.acknowledge(), 0x2c);
    pulse(pic, 9);  // higher than IRQ12 on the slave
    EXPECT_TRUE(pic.output());
    EXPECT_EQ(pic.acknowledge(), 0x29);
    EXPECT_EQ(pic.isr(1), 0x12);
    pulse(pic, 13);  // lower than IRQ9/12 in service on the slave
    EXPECT_FALSE(pic.output());
    pulse(pic, 4);   // lower than IR2 on the master
    EXPECT_FALSE(pic.output());
}

TEST(Pic8259, ElcrLevelInputFollowsTheLineAndRepeatsAfterEoi)
{
    Pic8259Pair pic;
    init_pair(pic);
    pic.write_port(0x4d0, 0x20);
    pic.set_irq(5, true);
    EXPECT_EQ(pic.acknowledge(), 0x25);
    EXPECT_EQ(pic.irr(0), 0x20);  // level: IRR follows the still-high line
    EXPECT_FALSE(pic.output());
    pic.write_port(0x20, kNonSpecificEoi);
    EXPECT_TRUE(pic.output());    // still high after EOI: requested again
    EXPECT_EQ(pic.acknowledge(), 0x25);
    pic.set_irq(5, false);
    EXPECT_EQ(pic.irr(0), 0x00);
    pic.write_port(0x20, kNonSpecificEoi);
    EXPECT_FALSE(pic.output());
}

TEST(Pic8259, ElcrReservedBitsCannotBeSet)
{
    Pic8259Pair pic;
    pic.write_port(0x4d0, 0xff);
    pic.write_port(0x4d1, 0xff);
    EXPECT_EQ(pic.read_port(0x4d0), 0xf8);  // IRQ 0, 1, 2 edge only
    EXPECT_EQ(pic.read_port(0x4d1), 0xde);  // IRQ 8, 13 edge only
    EXPECT_EQ(pic.stats().odd_writes, 2u);
    pic.write_port(0x4d1, 0x0c);
    EXPECT_EQ(pic.elcr(1), 0x0c);
    EXPECT_EQ(pic.stats().odd_writes, 2u);
}

TEST(Pic8259, Icw1LtimMakesEveryInputLevelTriggered)
{
    Pic8259Pair pic;
    pic.write_port(0x20, 0x19);  // ICW1 with LTIM
    pic.write_port(0x21, 0x20);
    pic.write_port(0x21, 0x04);
    pic.write_port(0x21, 0x01);
    pic.set_irq(1, true);
    EXPECT_EQ(pic.acknowledge(), 0x21);
    pic.write_port(0x20, kNonSpecificEoi);
    EXPECT_TRUE(pic.output());
    pic.set_irq(1, false);
    EXPECT_FALSE(pic.output());
}

TEST(Pic8259, Icw1ResetsTheEdgeSenseCircuit)
{
    Pic8259Pair pic;
    pic.set_irq(3, true);  // high before initialization
    init_pair(pic);
    EXPECT_EQ(pic.irr(0), 0x00);
    EXPECT_FALSE(pic.output());
    pic.set_irq(3, false);
    pic.set_irq(3, true);
    EXPECT_EQ(pic.irr(0), 0x08);
}

TEST(Pic8259, Icw1WithoutIcw4SelectsMcs80ModeAndIsCountedOdd)
{
    Pic8259Pair pic;
    pic.write_port(0x20, 0x10);  // IC4 = 0, cascade
    pic.write_port(0x21, 0x20);
    pic.write_port(0x21, 0x04);  // ICW3, then ready
    EXPECT_EQ(pic.stats().odd_writes, 1u);
    pic.write_port(0x21, 0x5a);  // OCW1 now
    EXPECT_EQ(pic.imr(0), 0x5a);
}

TEST(Pic8259, ReservedAndOddValuesAreCounted)
{
    Pic8259Pair pic;
    init_pair(pic);
    pic.write_port(0x20, 0x88);                 // OCW3 with D7 set
    pic.write_port(0x20, kNonSpecificEoi);      // nothing in service
    pic.write_port(0xa0, 0x11);
    pic.write_port(0xa1, 0x2c);                 // ICW2 low bits set
    pic.write_port(0xa1, 0x02);
    pic.write_port(0xa1, 0xe1);                 // ICW4 reserved bits
    EXPECT_EQ(pic.vector_base(1), 0x28);
    EXPECT_EQ(pic.stats().odd_writes, 4u);
}

TEST(Pic8259, OutputCallbackReportsEachChange)
{
    std::vector<bool> levels;
    Pic8259Pair pic([&](bool level) { levels.push_back(level); });
    init_pair(pic);
    pulse(pic, 1);
    pulse(pic, 3);   // INT already high: no new report
    pic.acknowledge();  // IR3 still pending but below IR1 in service: falls
    pic.write_port(0x20, kNonSpecificEoi);  // rises for IR3
    pic.acknowledge();
    EXPECT_EQ(levels, (std::vector<bool>{true, false, true, false}));
}

TEST(Pic8259, CallbacksMayCallBackIntoTheModel)
{
    std::vector<uint8_t> vectors;
    Pic8259Pair* self = nullptr;
    Pic8259Pair pic([&](bool level) {
        if (level) vectors.push_back(self->acknowledge());  // no deadlock
    });
    self = &pic;
    init_pair(pic, 0x03, 0x03);
    pulse(pic, 6);
    pulse(pic, 10);
    pulse(pic, 0);
    EXPECT_EQ(vectors, (std::vector<uint8_t>{0x26, 0x2a, 0x20}));
    EXPECT_FALSE(pic.output());
}

TEST(Pic8259, AttachRegistersThePortsOnTheBus)
{
    Bus pio("pio");
    Pic8259Pair pic;
    pic.attach(pio);
    const uint8_t icws_master[] = {0x11, 0x20, 0x04, 0x01};
    const uint8_t icws_slave[] = {0x11, 0x28, 0x02, 0x01};
    for (int i = 0; i < 4; ++i) {
        EXPECT_TRUE(pio.write(i == 0 ? 0x20 : 0x21, std::span(&icws_master[i], 1)));
        EXPECT_TRUE(pio.write(i == 0 ? 0xa0 : 0xa1, std::span(&icws_slave[i], 1)));
    }
    const uint8_t elcr[2] = {0x20, 0x0c};
    EXPECT_TRUE(pio.write(0x4d0, std::span(elcr, 2)));  // one 16-bit OUT, two ports
    EXPECT_EQ(pic.elcr(0), 0x20);
    EXPECT_EQ(pic.elcr(1), 0x0c);
    uint8_t imrs[1] = {0};
    const uint8_t mask[1] = {0x81};
    EXPECT_TRUE(pio.write(0xa1, std::span(mask, 1)));
    EXPECT_TRUE(pio.read(0xa1, std::span(imrs, 1)));
    EXPECT_EQ(imrs[0], 0x81);
    EXPECT_EQ(pic.vector_base(1), 0x28);
}

TEST(Pic8259, ConcurrentCallersDoNotDeadlockAndLoseNoRequest)
{
    std::atomic<int> rises{0};
    Pic8259Pair pic([&](bool level) { rises += level ? 1 : 0; });
    init_pair(pic, 0x03, 0x03);  // AEOI: no EOIs needed
    constexpr int kRounds = 300;
    std::atomic<bool> stop{false};
    std::atomic<int> acked_irq3{0}, acked_irq11{0};
    std::thread acker([&] {
        while (!stop) {
            if (!pic.output()) {
                std::this_thread::yield();
                continue;
            }
            const uint8_t v = pic.acknowledge();
            if (v == 0x23) ++acked_irq3;
            if (v == 0x2b) ++acked_irq11;
        }
    });
    std::thread a([&] {
        for (int i = 0; i < kRounds; ++i) {
            while (pic.irr(0) & 0x08) std::this_thread::yield();
            pulse(pic, 3);
        }
    });
    std::thread b([&] {
        for (int i = 0; i < kRounds; ++i) {
            while (pic.irr(1) & 0x08) std::this_thread::yield();
            pulse(pic, 11);
        }
    });
    a.join();
    b.join();
    while (pic.irr(0) || pic.irr(1)) std::this_thread::yield();
    stop = true;
    acker.join();
    EXPECT_EQ(acked_irq3.load(), kRounds);
    EXPECT_EQ(acked_irq11.load(), kRounds);
    EXPECT_GT(rises.load(), 0);
}

}  // namespace
}  // namespace kvmini
