// PCI configuration mechanism #1, BAR sizing and moving, the capability list,
// INTx and MSI-X, all driven through ports 0xcf8/0xcfc and the buses as a
// guest would.
#include <gtest/gtest.h>

#include "devices/pci/pci_device.h"
#include "devices/pci/pci_host_bridge.h"
#include "tests/unit/virtio_driver_harness.h"
#include "vmm/error.h"
#include "vmm/memory_layout.h"

namespace kvmini {
namespace {

using test::TestMachine;

// A device with one BAR of each kind and MSI-X; it remembers BAR accesses.
class FakeDevice : public PciDevice {
public:
    FakeDevice() : PciDevice(PciIds{0x1234, 0x5678, 0x1af4, 0x0001, 3, 0xff0000}, "fake")
    {
        declare_bar(0, PciBarKind::kIo, 64);
        declare_bar(1, PciBarKind::kMem32, 0x2000);
        declare_bar(2, PciBarKind::kMem64, 0x10000);
        add_msix(3, 4);
        const uint8_t vendor_body[] = {0xaa, 0xbb};
        add_capability(pci::kCapIdVendor, vendor_body);
        set_interrupt_pin(1);
    }
    ~FakeDevice() override { detach_from_buses(); }

    using PciDevice::msix_enabled;
    using PciDevice::msix_notify;
    using PciDevice::set_intx;

    std::atomic<int> reads{0}, writes{0};
    std::atomic<unsigned> last_bar{99};
    std::atomic<uint64_t> last_offset{0};

protected:
    void bar_read(unsigned bar, uint64_t offset, std::span<uint8_t> data) override
    {
        ++reads;
        last_bar = bar;
        last_offset = offset;
        std::fill(data.begin(), data.end(), static_cast<uint8_t>(0x10 + bar));
    }
    void bar_write(unsigned bar, uint64_t offset, std::span<const uint8_t>) override
    {
        ++writes;
        last_bar = bar;
        last_offset = offset;
    }
};

TEST(PciHostBridge, ConfigAddressRegister)
{
    TestMachine m;
    m.out(pci::kConfigAddressPort, 4, 0xffff'ffff);
    EXPECT_EQ(m.in(pci::kConfigAddressPort, 4), pci::kConfigAddressWritable);   // reserved bits and 1:0 read 0
    // Linux's pci_check_type1 pokes 0xcfb with a byte first: not CONFIG_ADDRESS.
    m.out(pci::kConfigAddressPort, 4, 0x8000'0000);
    m.out(pci::kConfigAddressPort + 3, 1, 0x01);
    EXPECT_EQ(m.in(pci::kConfigAddressPort, 4), 0x8000'0000u);
    EXPECT_EQ(m.in(pci::kConfigAddressPort, 2), 0xffffu);   // only dword accesses hit it
}

TEST(PciHostBridge, HostBridgeAtSlotZero)
{
    TestMachine m;
    EXPECT_EQ(m.cfg_read(0, pci::kVendorId, 2), pci::kHostBridgeVendor);
    EXPECT_EQ(m.cfg_read(0, pci::kDeviceId, 2), pci::kHostBridgeDevice);
    EXPECT_EQ(m.cfg_read(0, pci::kClassProgIf - 1, 4) >> 8, pci::kClassHostBridge);
    EXPECT_EQ(m.cfg_read(0, pci::kHeaderType, 1), pci::kHeaderTypeNormal);
}

TEST(PciHostBridge, EmptySlotsOtherBusesAndFunctionsReadAllOnes)
{
    TestMachine m;
    EXPECT_EQ(m.cfg_read(5, 0, 4), 0xffff'ffffu);
    EXPECT_EQ(m.cfg_read(5, 0, 2), 0xffffu);
    EXPECT_EQ(m.cfg_read(0, 0, 4, /*bus=*/1), 0xffff'ffffu);
    EXPECT_EQ(m.cfg_read(0, 0, 4, 0, /*fn=*/1), 0xffff'ffffu);
    // Enable bit clear: no configuration cycle.
    m.out(pci::kConfigAddressPort, 4, 0);
    EXPECT_EQ(m.in(pci::kConfigDataPort, 4), 0xffff'ffffu);
    m.cfg_write(5, pci::kCommand, 2, 0x7);   // dropped, nothing crashes
}

TEST(PciHostBridge, ByteWordDwordAccessesAtDataOffsets)
{
    TestMachine m;
    FakeDevice dev;
    const uint8_t slot = m.plug(dev);
    EXPECT_EQ(slot, 1);
    EXPECT_EQ(m.cfg_read(slot, 0, 4), 0x5678'1234u);
    EXPECT_EQ(m.cfg_read(slot, 2, 2), 0x5678u);   // port 0xcfe
    EXPECT_EQ(m.cfg_read(slot, 1, 1), 0x12u);     // port 0xcfd
    EXPECT_EQ(m.cfg_read(slot, 3, 1), 0x56u);     // port 0xcff
    EXPECT_EQ(m.cfg_read(slot, pci::kRevisionId, 1), 3u);
    EXPECT_EQ(m.cfg_read(slot, pci::kSubsystemVendorId, 2), 0x1af4u);
    // Writable scratch: interrupt line; read-only: IDs, class, header, status.
    m.cfg_write(slot, pci::kInterruptLine, 1, 0x5a);
    EXPECT_EQ(m.cfg_read(slot, pci::kInterruptLine, 1), 0x5au);
    m.cfg_write(slot, pci::kVendorId, 4, 0);
    m.cfg_write(slot, pci::kClassProgIf, 1, 0x12);
    m.cfg_write(slot, pci::kStatus, 2, 0xffff);
    EXPECT_EQ(m.cfg_read(slot, 0, 4), 0x5678'1234u);
    EXPECT_EQ(m.cfg_read(slot, pci::kClassProgIf, 1), 0u);
    EXPECT_EQ(m.cfg_read(slot, pci::kStatus, 2), pci::kStatusCapList);
    EXPECT_EQ(m.cfg_read(slot, pci::kInterruptPin, 1), 1u);
}

TEST(PciHostBridge, SlotsAndErrors)
{
    TestMachine m;
    FakeDevice a, b;
    EXPECT_EQ(m.bridge.add_device(a, 7), 7);
    EXPECT_THROW(m.bridge.add_device(b, 7), Error);
    EXPECT_THROW(m.bridge.add_device(b, 32), Error);
    EXPECT_EQ(m.bridge.add_device(b), 1);
    EXPECT_EQ(m.bridge.device(7), &a);
    {
        FakeDevice c;
        EXPECT_EQ(m.bridge.add_device(c), 2);
    }
    // A destroyed device leaves its slot.
    EXPECT_EQ(m.bridge.device(2), nullptr);
    EXPECT_EQ(m.cfg_read(2, 0, 4), 0xffff'ffffu);
}

TEST(PciDevice, BarsArePreassignedAlignedAndDecoded)
{
    TestMachine m;
    FakeDevice dev;
    const uint8_t slot = m.plug(dev);
    EXPECT_EQ(m.cfg_read(slot, pci::kCommand, 2) & (pci::kCommandIo | pci::kCommandMemory),
              pci::kCommandIo | pci::kCommandMemory);
    const uint32_t io = m.cfg_read(slot, pci::kBar0, 4);
    EXPECT_EQ(io & 1u, 1u);
    EXPECT_GE(io & ~3u, pci::kPciIoStart);
    EXPECT_EQ((io & ~3u) % 64, 0u);
    const uint32_t mem32 = m.cfg_read(slot, pci::kBar0 + 4, 4);
    EXPECT_EQ(mem32 & 0xfu, 0u);
    EXPECT_GE(mem32, layout::kPciMmioStart);
    EXPECT_EQ(mem32 % 0x2000, 0u);
    const uint32_t lo64 = m.cfg_read(slot, pci::kBar0 + 8, 4);
    EXPECT_EQ(lo64 & 0x6u, pci::kBarMemType64);
    const uint64_t mem64 = (uint64_t{m.cfg_read(slot, pci::kBar0 + 12, 4)} << 32) | (lo64 & ~0xfu);
    EXPECT_EQ(mem64 % 0x10000, 0u);
    EXPECT_GE(mem64, layout::kPciMmioStart);
    EXPECT_LT(mem64, layout::kPciMmioEnd);

    // Accesses reach the device at the right BAR and offset.
    EXPECT_EQ(m.in(static_cast<uint16_t>((io & ~3u) + 8), 1), 0x10u);
    EXPECT_EQ(dev.last_offset, 8u);
    EXPECT_EQ(m.mmio_read(mem32 + 0x100, 4), 0x11111111u);
    EXPECT_EQ(dev.last_bar, 1u);
    m.mmio_write(mem64 + 0x20, 8, 0);
    EXPECT_EQ(dev.last_bar, 2u);
    EXPECT_EQ(dev.last_offset, 0x20u);
    EXPECT_EQ(dev.bar_address(2), mem64);
}

TEST(PciDevice, BarSizingReadsBackSizeMask)
{
    TestMachine m;
    FakeDevice dev;
    const uint8_t slot = m.plug(dev);
    // As Linux's __pci_read_base: decode off, write all-ones, read, restore.
    const uint16_t cmd = static_cast<uint16_t>(m.cfg_read(slot, pci::kCommand, 2));
    m.cfg_write(slot, pci::kCommand, 2, cmd & ~(pci::kCommandIo | pci::kCommandMemory));
    std::array<uint32_t, 6> saved{};
    for (unsigned b = 0; b < 6; ++b) {
        saved[b] = m.cfg_read(slot, pci::kBar0 + 4 * b, 4);
        m.cfg_write(slot, pci::kBar0 + 4 * b, 4, 0xffff'ffff);
    }
    EXPECT_EQ(m.cfg_read(slot, pci::kBar0, 4), 0x0000'ffc1u);    // 64 ports, I/O
    EXPECT_EQ(m.cfg_read(slot, pci::kBar0 + 4, 4), 0xffff'e000u); // 8 KiB, 32-bit memory
    EXPECT_EQ(m.cfg_read(slot, pci::kBar0 + 8, 4), 0xffff'0004u); // 64 KiB, 64-bit memory
    EXPECT_EQ(m.cfg_read(slot, pci::kBar0 + 12, 4), 0xffff'ffffu);
    EXPECT_EQ(m.cfg_read(slot, pci::kBar0 + 16, 4), 0xffff'f000u); // MSI-X BAR, 4 KiB
    EXPECT_EQ(m.cfg_read(slot, pci::kBar0 + 20, 4), 0u);           // not implemented
    m.cfg_write(slot, pci::kExpansionRom, 4, 0xffff'f800);
    EXPECT_EQ(m.cfg_read(slot, pci::kExpansionRom, 4), 0u);
    for (unsigned b = 0; b < 6; ++b) m.cfg_write(slot, pci::kBar0 + 4 * b, 4, saved[b]);
    m.cfg_write(slot, pci::kCommand, 2, cmd);
    EXPECT_EQ(m.cfg_read(slot, pci::kBar0 + 4, 4), saved[1]);
    EXPECT_TRUE(dev.bar_address(1).has_value());
}

TEST(PciDevice, GuestMovesBarsAndTogglesDecoding)
{
    TestMachine m;
    FakeDevice dev;
    const uint8_t slot = m.plug(dev);
    const uint64_t old32 = m.cfg_read(slot, pci::kBar0 + 4, 4);
    const uint16_t old_io = static_cast<uint16_t>(m.cfg_read(slot, pci::kBar0, 4) & ~3u);

    // Memory decode off: the BAR is gone from the bus.
    const uint16_t cmd = static_cast<uint16_t>(m.cfg_read(slot, pci::kCommand, 2));
    m.cfg_write(slot, pci::kCommand, 2, cmd & ~pci::kCommandMemory);
    EXPECT_FALSE(dev.bar_address(1).has_value());
    const int before = dev.reads;
    EXPECT_EQ(m.mmio_read(old32, 4), 0xffff'ffffu);
    EXPECT_EQ(dev.reads, before);
    EXPECT_EQ(m.in(old_io, 1), 0x10u);   // I/O still decoded

    // Move BAR1 and BAR2 (both halves), decode on again.
    const uint64_t new32 = 0xd000'0000, new64 = 0x1'2000'0000;
    m.cfg_write(slot, pci::kBar0 + 4, 4, static_cast<uint32_t>(new32));
    m.cfg_write(slot, pci::kBar0 + 8, 4, static_cast<uint32_t>(new64));
    m.cfg_write(slot, pci::kBar0 + 12, 4, static_cast<uint32_t>(new64 >> 32));
    m.cfg_write(slot, pci::kCommand, 2, cmd);
    EXPECT_EQ(dev.bar_address(1), new32);
    EXPECT_EQ(dev.bar_address(2), new64);
    EXPECT_EQ(m.mmio_read(old32, 4), 0xffff'ffffu);
    EXPECT_EQ(m.mmio_read(new32 + 4, 1), 0x11u);
    EXPECT_EQ(m.mmio_read(new64, 1), 0x12u);

    // Move with decoding left on: re-registered at once.
    m.cfg_write(slot, pci::kBar0 + 4, 4, 0xd010'0000);
    EXPECT_EQ(dev.bar_address(1), 0xd010'0000u);
    EXPECT_EQ(m.mmio_read(new32, 4), 0xffff'ffffu);
    EXPECT_EQ(m.mmio_read(0xd010'0000, 1), 0x11u);

    // Moving the I/O BAR.
    m.cfg_write(slot, pci::kBar0, 4, 0xe000);
    EXPECT_EQ(m.in(0xe000, 1), 0x10u);
    EXPECT_EQ(m.in(old_io, 1), 0xffu);
}

TEST(PciDevice, BarPlacedOnAnotherDeviceIsNotDecoded)
{
    TestMachine m;
    FakeDevice a, b;
    const uint8_t sa = m.plug(a), sb = m.plug(b);
    const uint32_t a_bar1 = m.cfg_read(sa, pci::kBar0 + 4, 4);
    m.cfg_write(sb, pci::kBar0 + 4, 4, a_bar1);   // overlap: no throw, not mapped
    EXPECT_FALSE(b.bar_address(1).has_value());
    EXPECT_EQ(b.bar_map_failures(), 1u);
    EXPECT_EQ(m.mmio_read(a_bar1, 1), 0x11u);
    EXPECT_EQ(a.last_bar, 1u);
    // Sizing pattern with decoding on is never decoded.
    m.cfg_write(sb, pci::kBar0 + 4, 4, 0xffff'ffff);
    EXPECT_FALSE(b.bar_address(1).has_value());
}

TEST(PciDevice, CapabilityListIsWalkable)
{
    TestMachine m;
    FakeDevice dev;
    const uint8_t slot = m.plug(dev);
    EXPECT_TRUE(m.cfg_read(slot, pci::kStatus, 2) & pci::kStatusCapList);
    std::vector<uint8_t> ids;
    uint8_t at = static_cast<uint8_t>(m.cfg_read(slot, pci::kCapabilitiesPtr, 1));
    while (at && ids.size() < 10) {
        EXPECT_EQ(at % 4, 0);
        EXPECT_GE(at, pci::kFirstCapability);
        ids.push_back(static_cast<uint8_t>(m.cfg_read(slot, at, 1)));
        if (ids.back() == pci::kCapIdVendor) {
            EXPECT_EQ(m.cfg_read(slot, at + 2, 2), 0xbbaau);
        }
        at = static_cast<uint8_t>(m.cfg_read(slot, at + 1, 1));
    }
    EXPECT_EQ(ids, (std::vector<uint8_t>{pci::kCapIdMsix, pci::kCapIdVendor}));
}

TEST(PciDevice, IntxFollowsLevelDisableBitAndStatus)
{
    TestMachine m;
    FakeDevice dev;
    const uint8_t slot = m.plug(dev);
    const uint32_t gsi = gsi::pci_intx_gsi(slot, 0);
    EXPECT_EQ(m.cfg_read(slot, pci::kInterruptLine, 1), gsi);

    dev.set_intx(true);
    EXPECT_TRUE(m.irqs.level(gsi));
    EXPECT_TRUE(m.cfg_read(slot, pci::kStatus, 2) & pci::kStatusInterrupt);

    const uint16_t cmd = static_cast<uint16_t>(m.cfg_read(slot, pci::kCommand, 2));
    m.cfg_write(slot, pci::kCommand, 2, cmd | pci::kCommandIntxDisable);
    EXPECT_FALSE(m.irqs.level(gsi));
    EXPECT_TRUE(m.cfg_read(slot, pci::kStatus, 2) & pci::kStatusInterrupt);   // still pending
    m.cfg_write(slot, pci::kCommand, 2, cmd);
    EXPECT_TRUE(m.irqs.level(gsi));

    dev.set_intx(false);
    EXPECT_FALSE(m.irqs.level(gsi));
    EXPECT_FALSE(m.cfg_read(slot, pci::kStatus, 2) & pci::kStatusInterrupt);
    EXPECT_EQ(m.irqs.raises(gsi), 2u);
}

class MsixTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        slot = m.plug(dev);
        cap = static_cast<uint8_t>(m.cfg_read(slot, pci::kCapabilitiesPtr, 1));
        ASSERT_EQ(m.cfg_read(slot, cap, 1), pci::kCapIdMsix);
        const uint32_t t = m.cfg_read(slot, cap + pci::kMsixTableOffset, 4);
        ASSERT_EQ(t & pci::kMsixBirMask, 4u);
        table = *dev.bar_address(4) + (t & ~pci::kMsixBirMask);
        const uint32_t p = m.cfg_read(slot, cap + pci::kMsixPbaOffset, 4);
        pba = *dev.bar_address(4) + (p & ~pci::kMsixBirMask);
        for (unsigned v = 0; v < 3; ++v) {
            m.mmio_write(table + 16 * v, 4, 0xfee0'0000);
            m.mmio_write(table + 16 * v + 4, 4, 0);
            m.mmio_write(table + 16 * v + 8, 4, 0x30 + v);
        }
    }
    void set_control(uint16_t bits)
    {
        const uint16_t c = static_cast<uint16_t>(m.cfg_read(slot, cap + 2, 2));
        m.cfg_write(slot, cap + 2, 2, (c & 0x7ff) | bits);
    }

    TestMachine m;
    FakeDevice dev;
    uint8_t slot = 0, cap = 0;
    uint64_t table = 0, pba = 0;
};

TEST_F(MsixTest, LayoutAndReset)
{
    EXPECT_EQ(m.cfg_read(slot, cap + 2, 2) & pci::kMsixControlTableSizeMask, 2u);   // 3 vectors
    for (unsigned v = 0; v < 3; ++v) EXPECT_EQ(m.mmio_read(table + 16 * v + 12, 4), pci::kMsixVectorMasked);
    EXPECT_EQ(m.mmio_read(table, 4), 0xfee0'0000u);
    m.mmio_write(table, 4, 0xfee0'0003);   // bits 1:0 are read-only 0
    EXPECT_EQ(m.mmio_read(table, 4), 0xfee0'0000u);
    EXPECT_FALSE(dev.msix_notify(0));   // disabled
}

TEST_F(MsixTest, MaskedVectorIsPendingAndSentOnUnmask)
{
    set_control(pci::kMsixControlEnable);
    EXPECT_TRUE(dev.msix_enabled());
    EXPECT_TRUE(dev.msix_notify(1));   // masked since reset
    EXPECT_EQ(m.irqs.msi_total(), 0u);
    EXPECT_EQ(m.mmio_read(pba, 8), 0x2u);
    m.mmio_write(table + 16 * 1 + 12, 4, 0);   // unmask vector 1
    EXPECT_EQ(m.irqs.msi_count(0x31), 1u);
    EXPECT_EQ(m.mmio_read(pba, 8), 0u);
    EXPECT_TRUE(dev.msix_notify(1));
    EXPECT_EQ(m.irqs.msi_count(0x31), 2u);
    EXPECT_FALSE(dev.msix_notify(3));   // no such vector
    m.mmio_write(pba, 8, 0xff);         // PBA is read-only
    EXPECT_EQ(m.mmio_read(pba, 8), 0u);
}

TEST_F(MsixTest, FunctionMaskHoldsEveryVector)
{
    for (unsigned v = 0; v < 3; ++v) m.mmio_write(table + 16 * v + 12, 4, 0);
    set_control(pci::kMsixControlEnable | pci::kMsixControlFunctionMask);
    EXPECT_TRUE(dev.msix_notify(0));
    EXPECT_TRUE(dev.msix_notify(2));
    EXPECT_EQ(m.irqs.msi_total(), 0u);
    EXPECT_EQ(m.mmio_read(pba, 8), 0x5u);
    set_control(pci::kMsixControlEnable);
    EXPECT_EQ(m.irqs.msi_count(0x30), 1u);
    EXPECT_EQ(m.irqs.msi_count(0x32), 1u);
    EXPECT_EQ(m.mmio_read(pba, 8), 0u);
}

TEST_F(MsixTest, EnablingMsixSilencesIntx)
{
    const uint32_t gsi = gsi::pci_intx_gsi(slot, 0);
    dev.set_intx(true);
    EXPECT_TRUE(m.irqs.level(gsi));
    set_control(pci::kMsixControlEnable);
    EXPECT_FALSE(m.irqs.level(gsi));
    set_control(0);
    EXPECT_TRUE(m.irqs.level(gsi));
}

}  // namespace
}  // namespace kvmini
