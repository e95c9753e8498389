#include <gtest/gtest.h>

#include <vector>

#include "irqchip/gsi_layout.h"
#include "irqchip/irq_router.h"
#include "vmm/error.h"

using namespace kvmini;

namespace {
struct RecordingChip : IrqChip {
    std::vector<std::pair<uint32_t, bool>> levels;
    std::vector<MsiMessage> msis;
    std::string mode_name() const override { return "test"; }
    void create(Vm&) override {}
    void set_gsi_level(uint32_t gsi, bool level) override { levels.emplace_back(gsi, level); }
    void send_msi(const MsiMessage& m) override { msis.push_back(m); }
    IrqChipStats stats() const override { return {}; }
};
}  // namespace

TEST(IrqRouter, LevelChangesReachTheChipOnce)
{
    RecordingChip chip;
    IrqRouter router(chip);
    IrqLine line = router.line(4);
    line.set_level(true);
    line.set_level(true);
    line.set_level(false);
    ASSERT_EQ(chip.levels.size(), 2u);
    EXPECT_EQ(chip.levels[0], std::make_pair(4u, true));
    EXPECT_EQ(chip.levels[1], std::make_pair(4u, false));
}

TEST(IrqRouter, SharedLevelLineStaysHighWhileAnySourceHoldsIt)
{
    RecordingChip chip;
    IrqRouter router(chip);
    IrqLine a = router.line(16), b = router.line(16);
    a.set_level(true);
    b.set_level(true);
    a.set_level(false);
    EXPECT_TRUE(router.gsi_level(16));
    ASSERT_EQ(chip.levels.size(), 1u) << "the GSI must not drop while b still asserts it";
    b.set_level(false);
    EXPECT_FALSE(router.gsi_level(16));
    ASSERT_EQ(chip.levels.size(), 2u);
    EXPECT_EQ(chip.levels[1], std::make_pair(16u, false));
}

TEST(IrqRouter, PulseIsARisingThenFallingEdge)
{
    RecordingChip chip;
    IrqRouter router(chip);
    router.line(3).pulse();
    ASSERT_EQ(chip.levels.size(), 2u);
    EXPECT_TRUE(chip.levels[0].second);
    EXPECT_FALSE(chip.levels[1].second);
}

TEST(IrqRouter, MsiPassesThrough)
{
    RecordingChip chip;
    IrqRouter router(chip);
    router.msi_sender().send({0xfee01000, 0x4041});
    ASSERT_EQ(chip.msis.size(), 1u);
    EXPECT_EQ(chip.msis[0], (MsiMessage{0xfee01000, 0x4041}));
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
    RecordingChip chip;
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
