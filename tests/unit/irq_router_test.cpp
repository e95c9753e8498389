#include <gtest/gtest.h>

#include <vector>

#include "irqchip/gsi_layout.h"
#include "irqchip/irq_router.h"
#include "tests/unit/fakes.h"
#include "vmm/error.h"

using namespace kvmini;

using test::RecordingIrqChip;

TEST(IrqRouter, LevelChangesReachTheChipOnce)
{
    RecordingIrqChip chip;
    IrqRouter router(chip);
    IrqLine line = router.line(4);
    line.set_level(true);
    line.set_level(true);
    line.set_level(false);
    ASSERT_EQ(chip.events().size(), 2u);
    EXPECT_EQ(chip.events()[0], std::make_pair(4u, true));
    EXPECT_EQ(chip.events()[1], std::make_pair(4u, false));
}

TEST(IrqRouter, SharedLevelLineStaysHighWhileAnySourceHoldsIt)
{
    RecordingIrqChip chip;
    IrqRouter router(chip);
    IrqLine a = router.line(16), b = router.line(16);
    a.set_level(true);
    b.set_level(true);
    a.set_level(false);
    EXPECT_TRUE(router.gsi_level(16));
    ASSERT_EQ(chip.events().size(), 1u) << "the GSI must not drop while b still asserts it";
    b.set_level(false);
    EXPECT_FALSE(router.gsi_level(16));
    ASSERT_EQ(chip.events().size(), 2u);
    EXPECT_EQ(chip.events()[1], std::make_pair(16u, false));
}

TEST(IrqRouter, PulseIsARisingThenFallingEdge)
{
    RecordingIrqChip chip;
    IrqRouter router(chip);
    router.line(3).pulse();
    ASSERT_EQ(chip.events().size(), 2u);
    EXPECT_TRUE(chip.events()[0].second);
    EXPECT_FALSE(chip.events()[1].second);
}

TEST(IrqRouter, MsiPassesThrough)
{
    RecordingIrqChip chip;
    IrqRouter router(chip);
    router.msi_sender().send({0xfee01000, 0x4041});
    ASSERT_EQ(chip.msis().size(), 1u);
    EXPECT_EQ(chip.msis()[0], (MsiMessage{0xfee01000, 0x4041}));
}

TEST(IrqRouter, UnconnectedLineDoesNothing)
{
    IrqLine line;
    EXPECT_FALSE(line.connected());
    line.set_level(true);  // must not crash
    MsiSender msi;
    msi.send({});
}

TEST(IrqRouter, GsiOutOfRangeIsAnError)
{
    RecordingIrqChip chip;
    IrqRouter router(chip);
    EXPECT_THROW(router.line(24), Error);
}

TEST(GsiLayout, IsaIrq0IsWiredToIoapicPin2)
{
    EXPECT_EQ(gsi::ioapic_pin(0), 2u);
    EXPECT_FALSE(gsi::ioapic_pin(2).has_value());
    EXPECT_EQ(gsi::ioapic_pin(4), 4u);
    EXPECT_EQ(gsi::ioapic_pin(23), 23u);
    EXPECT_FALSE(gsi::ioapic_pin(24).has_value());
    EXPECT_EQ(gsi::pic_pin(0), 0u);
    EXPECT_FALSE(gsi::pic_pin(2).has_value());
    EXPECT_FALSE(gsi::pic_pin(16).has_value());
    EXPECT_EQ(gsi::pci_intx_gsi(1, 0), 17u);
    EXPECT_EQ(gsi::pci_intx_gsi(7, 1), 16u);
}
