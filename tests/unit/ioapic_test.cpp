// Ioapic against the Intel 82093AA datasheet (3.1, 3.2.1-3.2.4). Register
// values are written as the datasheet's bit patterns.
#include "irqchip/models/ioapic.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "devices/bus.h"
#include "devices/le.h"
#include "vmm/memory_layout.h"

namespace kvmini {
namespace {

// IOREDTBL low dword fields (3.2.4).
constexpr uint32_t kFixed = 0u << 8;
constexpr uint32_t kLowest = 1u << 8;
constexpr uint32_t kNmi = 4u << 8;
constexpr uint32_t kExtInt = 7u << 8;
constexpr uint32_t kLogical = 1u << 11;
constexpr uint32_t kDelivs = 1u << 12;
constexpr uint32_t kActiveLow = 1u << 13;
constexpr uint32_t kRemoteIrr = 1u << 14;
constexpr uint32_t kLevel = 1u << 15;
constexpr uint32_t kMasked = 1u << 16;

uint32_t mmio_read32(Ioapic& io, uint64_t offset)
{
    uint8_t b[4];
    io.read(offset, b);
    return le::load32(b);
}

void mmio_write32(Ioapic& io, uint64_t offset, uint32_t v)
{
    uint8_t b[4];
    le::store32(b, v);
    io.write(offset, b);
}

// Through IOREGSEL (0x00) and IOWIN (0x10), as a guest does.
void set_rte(Ioapic& io, unsigned pin, uint32_t low, uint32_t high = 0)
{
    mmio_write32(io, 0x00, 0x10 + 2 * pin + 1);
    mmio_write32(io, 0x10, high);
    mmio_write32(io, 0x00, 0x10 + 2 * pin);
    mmio_write32(io, 0x10, low);
}

uint32_t rte_low(Ioapic& io, unsigned pin)
{
    mmio_write32(io, 0x00, 0x10 + 2 * pin);
    return mmio_read32(io, 0x10);
}

struct Recorder {
    std::vector<IoapicDelivery> sent;
    Ioapic::DeliverCallback callback()
    {
        return [this](const IoapicDelivery& d) { sent.push_back(d); };
    }
};

IoapicConfig all_active_high() { return IoapicConfig{0, 0, 0x20}; }

TEST(Ioapic, IdVersionAndArbitrationRegisters)
{
    Ioapic io({}, IoapicConfig{2, 0, 0x20});
    EXPECT_EQ(io.read_register(0x01), 0x00170020u);  // 24 entries, version 0x20
    EXPECT_EQ(io.read_register(0x00), 0x02000000u);
    io.write_register(0x00, 0x05000000);
    EXPECT_EQ(io.read_register(0x00), 0x05000000u);
    EXPECT_EQ(io.read_register(0x02), 0x05000000u);
    io.write_register(0x01, 0);  // read-only
    EXPECT_EQ(io.read_register(0x01), 0x00170020u);
    io.write_register(0x00, 0xf0000001);  // reserved bits: ID keeps bits 27:24 only
    EXPECT_EQ(io.read_register(0x00), 0x00000000u);
    EXPECT_EQ(io.stats().odd_accesses, 2u);
}

TEST(Ioapic, ProgrammedMessageFollowsTheEntry)
{
    Recorder r;
    Ioapic io(r.callback(), all_active_high());
    EXPECT_FALSE(io.programmed_message(4).has_value()) << "masked at reset";
    set_rte(io, 4, 0x31 | kLevel | kLogical, 0x03000000);
    const auto m = io.programmed_message(4);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->vector, 0x31);
    EXPECT_EQ(m->delivery_mode, IoapicDeliveryMode::kFixed);
    EXPECT_EQ(m->destination, 3);
    EXPECT_TRUE(m->logical);
    EXPECT_TRUE(m->level);
    EXPECT_EQ(m->pin, 4);
    set_rte(io, 5, 0x05 | kFixed);  // illegal vector: never sent
    EXPECT_FALSE(io.programmed_message(5).has_value());
    set_rte(io, 6, 0x40 | kNmi | kLevel);  // NMI goes as an edge whatever bit 15 says
    ASSERT_TRUE(io.programmed_message(6).has_value());
    EXPECT_FALSE(io.programmed_message(6)->level);
    set_rte(io, 4, 0x31 | kMasked);
    EXPECT_FALSE(io.programmed_message(4).has_value());
    EXPECT_TRUE(r.sent.empty()) << "programming alone sends nothing";
}

TEST(Ioapic, EntriesResetMasked)
{
    Ioapic io({});
    for (unsigned pin = 0; pin < 24; ++pin) {
        EXPECT_EQ(io.read_register(0x10 + 2 * pin), 0x00010000u);
        EXPECT_EQ(io.read_register(0x11 + 2 * pin), 0u);
    }
    EXPECT_EQ(io.read_register(0x40), 0u);  // past IOREDTBL23
    EXPECT_EQ(io.stats().odd_accesses, 1u);
}

TEST(Ioapic, ReadOnlyBitsIgnoredAndReservedBitsCounted)
{
    Ioapic io({}, all_active_high());
    set_rte(io, 5, 0x31 | kDelivs | kRemoteIrr | kMasked, 0x0a000000);
    EXPECT_EQ(rte_low(io, 5), 0x31u | kMasked);
    EXPECT_EQ(io.stats().odd_accesses, 0u);
    set_rte(io, 5, 0x31 | (1u << 20), 0x0a000001);  // bits 20 and 32: reserved
    EXPECT_EQ(io.redirection_entry(5), 0x0a00000000000031ull);
    EXPECT_EQ(io.stats().odd_accesses, 2u);
}

TEST(Ioapic, EdgeDeliveredOnRisingEdgeOnly)
{
    Recorder r;
    Ioapic io(r.callback(), all_active_high());
    set_rte(io, 4, 0x31 | kFixed, 0x01000000);
    io.set_irq(4, true);
    ASSERT_EQ(r.sent.size(), 1u);
    EXPECT_EQ(r.sent[0], (IoapicDelivery{0x31, IoapicDeliveryMode::kFixed, 1, false, false, 4}));
    io.set_irq(4, true);  // no edge
    EXPECT_EQ(r.sent.size(), 1u);
    io.set_irq(4, false);
    EXPECT_EQ(r.sent.size(), 1u);
    io.set_irq(4, true);
    EXPECT_EQ(r.sent.size(), 2u);
    EXPECT_EQ(rte_low(io, 4) & (kDelivs | kRemoteIrr), 0u);  // idle, no remote IRR for edges
    EXPECT_EQ(io.stats().deliveries, 2u);
}

TEST(Ioapic, EdgeArrivingWhileThePreviousIsInFlightIsLost)
{
    Ioapic* self = nullptr;
    int calls = 0;
    uint64_t status_during_delivery = 0;
    Ioapic io(
        [&](const IoapicDelivery&) {
            ++calls;
            status_during_delivery = self->redirection_entry(7);
            if (calls == 1) {  // a second edge before the first is accepted
                self->set_irq(7, false);
                self->set_irq(7, true);
            }
        },
        all_active_high());
    self = &io;
    set_rte(io, 7, 0x47);
    io.set_irq(7, true);
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(status_during_delivery & kDelivs, kDelivs);  // delivery status: send pending
    EXPECT_EQ(io.redirection_entry(7) & kDelivs, 0u);
    EXPECT_EQ(io.stats().coalesced_edges, 1u);
    io.set_irq(7, false);
    io.set_irq(7, true);  // accepted by now: recognized again
    EXPECT_EQ(calls, 2);
}

TEST(Ioapic, EdgeOnAMaskedPinIsIgnoredNotHeldPending)
{
    Recorder r;
    Ioapic io(r.callback(), all_active_high());
    set_rte(io, 3, 0x33 | kMasked);
    io.set_irq(3, true);
    set_rte(io, 3, 0x33);  // unmask: the edge is gone
    EXPECT_TRUE(r.sent.empty());
    EXPECT_EQ(io.stats().masked_edges, 1u);
}

TEST(Ioapic, LevelStillAssertedAfterEoiIsDeliveredAgain)
{
    Recorder r;
    Ioapic io(r.callback(), all_active_high());
    set_rte(io, 9, 0x41 | kLevel);
    io.set_irq(9, true);
    ASSERT_EQ(r.sent.size(), 1u);
    EXPECT_TRUE(r.sent[0].level);
    EXPECT_EQ(rte_low(io, 9), 0x41u | kLevel | kRemoteIrr);
    io.set_irq(9, true);  // remote IRR set: nothing new
    EXPECT_EQ(r.sent.size(), 1u);
    io.eoi(0x41);
    EXPECT_EQ(r.sent.size(), 2u);  // still asserted: again
    EXPECT_EQ(io.stats().redeliveries, 1u);
    // Dropped and raised again while remote IRR is set: held until the EOI,
    // and then a new assertion, not a redelivery.
    io.set_irq(9, false);
    io.set_irq(9, true);
    EXPECT_EQ(r.sent.size(), 2u);
    io.eoi(0x41);
    EXPECT_EQ(r.sent.size(), 3u);
    EXPECT_EQ(io.stats().redeliveries, 1u);
    io.set_irq(9, false);
    io.eoi(0x41);
    EXPECT_EQ(r.sent.size(), 3u);
    EXPECT_EQ(rte_low(io, 9), 0x41u | kLevel);
    EXPECT_EQ(io.stats().eois, 3u);
    EXPECT_EQ(io.stats().remote_irr_cleared, 3u);
}

TEST(Ioapic, LevelDeassertedBeforeEoiIsNotDeliveredAgain)
{
    Recorder r;
    Ioapic io(r.callback(), all_active_high());
    set_rte(io, 10, 0x42 | kLevel);
    io.set_irq(10, true);
    io.set_irq(10, false);
    io.eoi(0x42);
    EXPECT_EQ(r.sent.size(), 1u);
    io.set_irq(10, true);
    EXPECT_EQ(r.sent.size(), 2u);
}

TEST(Ioapic, MaskedLevelDeliversWhenUnmaskedIfStillAsserted)
{
    Recorder r;
    Ioapic io(r.callback(), all_active_high());
    set_rte(io, 11, 0x43 | kLevel | kMasked);
    io.set_irq(11, true);
    EXPECT_TRUE(r.sent.empty());
    set_rte(io, 11, 0x43 | kLevel);
    ASSERT_EQ(r.sent.size(), 1u);
    EXPECT_EQ(r.sent[0].vector, 0x43);
    // Masked again and deasserted: unmasking sends nothing.
    io.eoi(0x43);
    ASSERT_EQ(r.sent.size(), 2u);
    set_rte(io, 11, 0x43 | kLevel | kMasked);
    io.eoi(0x43);
    io.set_irq(11, false);
    set_rte(io, 11, 0x43 | kLevel);
    EXPECT_EQ(r.sent.size(), 2u);
}

TEST(Ioapic, EoiClearsEveryEntryWithThatVectorAndNoOther)
{
    Recorder r;
    std::vector<std::pair<unsigned, uint8_t>> eois;
    Ioapic io(r.callback(), all_active_high(), [&](unsigned pin, uint8_t v) { eois.push_back({pin, v}); });
    set_rte(io, 12, 0x50 | kLevel);
    set_rte(io, 13, 0x50 | kLevel);
    set_rte(io, 14, 0x51 | kLevel);
    io.set_irq(12, true);
    io.set_irq(13, true);
    io.set_irq(14, true);
    io.set_irq(12, false);
    io.set_irq(13, false);
    io.set_irq(14, false);
    io.eoi(0x50);
    EXPECT_EQ(rte_low(io, 12) & kRemoteIrr, 0u);
    EXPECT_EQ(rte_low(io, 13) & kRemoteIrr, 0u);
    EXPECT_EQ(rte_low(io, 14) & kRemoteIrr, kRemoteIrr);
    EXPECT_EQ(eois, (std::vector<std::pair<unsigned, uint8_t>>{{12, 0x50}, {13, 0x50}}));
}

TEST(Ioapic, EoiRegisterAtOffset0x40)
{
    Recorder r;
    Ioapic io(r.callback(), all_active_high());
    set_rte(io, 20, 0x61 | kLevel);
    io.set_irq(20, true);
    mmio_write32(io, 0x40, 0x61);
    EXPECT_EQ(r.sent.size(), 2u);
    EXPECT_EQ(io.stats().eois, 1u);
}

TEST(Ioapic, Version0x11HasNoEoiRegister)
{
    Recorder r;
    IoapicConfig config = all_active_high();
    config.version = 0x11;
    Ioapic io(r.callback(), config);
    EXPECT_EQ(io.read_register(0x01), 0x00170011u);
    set_rte(io, 20, 0x61 | kLevel);
    io.set_irq(20, true);
    mmio_write32(io, 0x40, 0x61);
    EXPECT_EQ(rte_low(io, 20) & kRemoteIrr, kRemoteIrr);
    EXPECT_EQ(io.stats().eois, 0u);
    EXPECT_EQ(io.stats().odd_accesses, 1u);
    io.eoi(0x61);  // the LAPIC's EOI message still works
    EXPECT_EQ(r.sent.size(), 2u);
}

TEST(Ioapic, SwitchingToEdgeClearsRemoteIrr)
{
    Recorder r;
    Ioapic io(r.callback(), all_active_high());
    set_rte(io, 6, 0x46 | kLevel);
    io.set_irq(6, true);
    io.set_irq(6, false);
    EXPECT_EQ(rte_low(io, 6) & kRemoteIrr, kRemoteIrr);
    set_rte(io, 6, 0x46);
    EXPECT_EQ(rte_low(io, 6) & kRemoteIrr, 0u);
    set_rte(io, 6, 0x46 | kLevel);
    io.set_irq(6, true);
    EXPECT_EQ(r.sent.size(), 2u);
}

TEST(Ioapic, PolarityAppliesToTheWireLevel)
{
    Recorder r;
    Ioapic io(r.callback(), all_active_high());
    set_rte(io, 3, 0x33 | kActiveLow);
    io.set_irq(3, true);   // electrically high: inactive
    EXPECT_TRUE(r.sent.empty());
    io.set_irq(3, false);  // falling wire = rising active-low input
    EXPECT_EQ(r.sent.size(), 1u);
}

TEST(Ioapic, PciPinsAreActiveLowWires)
{
    Recorder r;
    Ioapic io(r.callback());  // kvmini's PC wiring: 16..23 active-low
    set_rte(io, 16, 0x71 | kLevel | kActiveLow);  // as the MP table says
    EXPECT_TRUE(r.sent.empty());  // idle wire is high: not asserted
    io.set_irq(16, true);         // device asserts INTA#
    ASSERT_EQ(r.sent.size(), 1u);
    io.set_irq(16, false);
    io.eoi(0x71);
    EXPECT_EQ(r.sent.size(), 1u);
    // Programmed active-high against the wiring: the idle line looks asserted.
    set_rte(io, 17, 0x72 | kLevel);
    EXPECT_EQ(r.sent.size(), 2u);
    EXPECT_EQ(r.sent[1].vector, 0x72);
}

TEST(Ioapic, IllegalVectorsAndReservedModesAreNotDelivered)
{
    Recorder r;
    Ioapic io(r.callback(), all_active_high());
    set_rte(io, 1, 0x0f | kFixed);
    io.set_irq(1, true);
    set_rte(io, 2, 0x40 | (3u << 8));
    io.set_irq(2, true);
    set_rte(io, 5, 0x40 | (6u << 8));
    io.set_irq(5, true);
    EXPECT_TRUE(r.sent.empty());
    EXPECT_EQ(io.stats().illegal_vectors, 1u);
    EXPECT_EQ(io.stats().reserved_modes, 2u);
    set_rte(io, 8, 0x00 | kNmi);  // the vector is ignored for NMI
    io.set_irq(8, true);
    ASSERT_EQ(r.sent.size(), 1u);
    EXPECT_EQ(r.sent[0].delivery_mode, IoapicDeliveryMode::kNmi);
}

TEST(Ioapic, NmiProgrammedLevelIsSentAsEdge)
{
    Recorder r;
    Ioapic io(r.callback(), all_active_high());
    set_rte(io, 8, kNmi | kLevel);
    EXPECT_EQ(io.stats().odd_accesses, 1u);
    io.set_irq(8, true);
    ASSERT_EQ(r.sent.size(), 1u);
    EXPECT_FALSE(r.sent[0].level);
    EXPECT_EQ(rte_low(io, 8) & kRemoteIrr, 0u);
    io.set_irq(8, true);  // held high: no second NMI
    EXPECT_EQ(r.sent.size(), 1u);
}

TEST(Ioapic, ExtIntAndLogicalDestinationArePassedOn)
{
    Recorder r;
    Ioapic io(r.callback(), all_active_high());
    set_rte(io, 0, kExtInt | kLogical, 0xff000000);
    io.set_irq(0, true);
    ASSERT_EQ(r.sent.size(), 1u);
    EXPECT_EQ(r.sent[0], (IoapicDelivery{0, IoapicDeliveryMode::kExtInt, 0xff, true, false, 0}));
}

TEST(Ioapic, DeliveryAsMsi)
{
    const IoapicDelivery d{0x45, IoapicDeliveryMode::kLowestPriority, 0x03, true, true, 9};
    const MsiMessage m = to_msi(d);
    EXPECT_EQ(m.address, 0xfee03004u);
    EXPECT_EQ(m.data, 0xc145u);
    const MsiMessage e = to_msi(IoapicDelivery{0x30, IoapicDeliveryMode::kFixed, 0x01, false, false, 2});
    EXPECT_EQ(e.address, 0xfee01000u);
    EXPECT_EQ(e.data, 0x4030u);
}

TEST(Ioapic, MmioThroughTheBus)
{
    Bus mmio("mmio");
    Ioapic io({});
    io.attach(mmio);
    const uint64_t base = layout::kIoapicBase;
    const uint8_t sel[4] = {0x01, 0, 0, 0};
    ASSERT_TRUE(mmio.write(base, sel));
    uint8_t win[4] = {};
    ASSERT_TRUE(mmio.read(base + 0x10, win));
    EXPECT_EQ(win[0], 0x20);
    EXPECT_EQ(win[2], 0x17);
    uint8_t byte[1] = {};
    ASSERT_TRUE(mmio.read(base + 0x12, byte));  // narrower read: that byte
    EXPECT_EQ(byte[0], 0x17);
    ASSERT_TRUE(mmio.read(base, byte));
    EXPECT_EQ(byte[0], 0x01);                   // IOREGSEL reads back
    EXPECT_TRUE(mmio.read(base + 0xfc, win));    // inside the window, reserved
    EXPECT_FALSE(mmio.read(base + 0x100, win));  // outside it
    EXPECT_EQ(io.stats().odd_accesses, 1u);
}

TEST(Ioapic, NarrowIowinWritesAreIgnored)
{
    Ioapic io({}, all_active_high());
    mmio_write32(io, 0x00, 0x10);
    const uint8_t two[2] = {0x55, 0x00};
    io.write(0x10, two);
    EXPECT_EQ(io.read_register(0x10), 0x00010000u);
    EXPECT_EQ(io.stats().odd_accesses, 1u);
}

TEST(Ioapic, CallbackMayEoiAtOnceWithoutDeadlock)
{
    Ioapic* self = nullptr;
    int sent = 0;
    Ioapic io(
        [&](const IoapicDelivery& d) {
            if (++sent < 5) self->eoi(d.vector);  // a LAPIC that EOIs at once
        },
        all_active_high());
    self = &io;
    set_rte(io, 15, 0x80 | kLevel);
    io.set_irq(15, true);
    EXPECT_EQ(sent, 5);  // asserted throughout: sent again after each EOI
    EXPECT_EQ(io.stats().redeliveries, 4u);
    EXPECT_EQ(rte_low(io, 15) & kRemoteIrr, kRemoteIrr);
}

TEST(Ioapic, ConcurrentPinsLoseNothingButCoalescedEdges)
{
    std::atomic<int> sent{0};
    Ioapic io([&](const IoapicDelivery&) { ++sent; }, all_active_high());
    for (unsigned pin = 1; pin <= 4; ++pin) set_rte(io, pin, 0x30 + pin);
    constexpr int kPulses = 2000;
    std::vector<std::thread> threads;
    for (unsigned pin = 1; pin <= 4; ++pin)
        threads.emplace_back([&io, pin] {
            for (int i = 0; i < kPulses; ++i) {
                io.set_irq(pin, true);
                io.set_irq(pin, false);
            }
        });
    for (auto& t : threads) t.join();
    const IoapicStats s = io.stats();
    EXPECT_EQ(s.deliveries + s.coalesced_edges, 4u * kPulses);
    EXPECT_EQ(uint64_t(sent.load()), s.deliveries);
}

}  // namespace
}  // namespace kvmini
