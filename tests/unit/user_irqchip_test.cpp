// The user irqchip's policy, with fake vCPUs and no KVM: when a vector is
// injected (only when the vCPU can take it, one per entry, the highest the
// PPR allows), when an interrupt window is requested and cleared, how HLT
// sleeps and wakes (IF, NMI, kicks), how an AP waits for INIT and SIPI, CR8
// against the TPR, level EOIs back to the IOAPIC, the ExtINT from the 8259A,
// the TSC-deadline timer and x2APIC self-IPIs. Register values are the
// datasheets' (Intel SDM vol. 3A ch. 11, 82093AA, 8259A).
//
// Waits: a before_run() that must block runs on its own thread; the test
// checks it has not returned after a short while (a slow host can only make
// such a check pass late, never wrongly fail) and then that it returns once
// the event comes, within seconds.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <future>
#include <memory>

#include "devices/bus.h"
#include "irqchip/backends/split_irqchip.h"
#include "irqchip/backends/user_irqchip.h"
#include "irqchip/models/lapic.h"
#include "tests/unit/fake_vcpu.h"
#include "vmm/memory_layout.h"

namespace kvmini {
namespace {

using testing::FakeVcpu;
using namespace std::chrono_literals;

constexpr uint64_t kApic = layout::kLapicBase;
constexpr uint32_t kSvrEnabled = 0x1ff;  // software enable, spurious vector 0xff

struct UserChip {
    explicit UserChip(unsigned cpus)
    {
        for (unsigned i = 0; i < cpus; ++i) {
            vcpus.push_back(std::make_unique<FakeVcpu>(i));
            chip.attach_vcpu(*vcpus.back());
        }
        chip.attach_buses(pio, mmio);
    }
    FakeVcpu& vcpu(unsigned i) { return *vcpus.at(i); }
    void apic_write(unsigned cpu, uint32_t offset, uint32_t value)
    {
        uint8_t b[4];
        std::memcpy(b, &value, 4);
        ASSERT_TRUE(chip.handle_mmio(vcpu(cpu), kApic + offset, b, true));
    }
    uint32_t apic_read(unsigned cpu, uint32_t offset)
    {
        uint8_t b[4] = {};
        EXPECT_TRUE(chip.handle_mmio(vcpu(cpu), kApic + offset, b, false));
        uint32_t v;
        std::memcpy(&v, b, 4);
        return v;
    }
    // An MSI, fixed delivery, physical destination (SDM 11.11.1, 11.11.2).
    void msi(uint8_t dest, uint8_t vector, uint32_t mode_bits = 0)
    {
        chip.send_msi(MsiMessage{0xfee0'0000u | (uint64_t{dest} << 12), vector | mode_bits});
    }
    void ioapic_write(uint8_t reg, uint32_t value)
    {
        mmio.write(layout::kIoapicBase, {reinterpret_cast<const uint8_t*>(&reg), 1});
        mmio.write(layout::kIoapicBase + 0x10, {reinterpret_cast<const uint8_t*>(&value), 4});
    }
    uint32_t ioapic_read(uint8_t reg)
    {
        uint32_t v = 0;
        mmio.write(layout::kIoapicBase, {reinterpret_cast<const uint8_t*>(&reg), 1});
        mmio.read(layout::kIoapicBase + 0x10, {reinterpret_cast<uint8_t*>(&v), 4});
        return v;
    }
    void out(uint16_t port, uint8_t value) { pio.write(port, {&value, 1}); }

    // Declared first, destroyed last: the chip's threads may kick them.
    std::vector<std::unique_ptr<FakeVcpu>> vcpus;
    UserIrqChip chip{PitPolicy::kReinject};
    Bus pio{"pio"}, mmio{"mmio"};
};

// before_run() on a thread of its own (the vCPU's).
std::future<bool> run_async(UserChip& u, unsigned cpu)
{
    return std::async(std::launch::async, [&u, cpu] { return u.chip.before_run(u.vcpu(cpu)); });
}
bool still_blocked(std::future<bool>& f) { return f.wait_for(100ms) == std::future_status::timeout; }
bool returns(std::future<bool>& f) { return f.wait_for(10s) == std::future_status::ready; }

TEST(UserIrqChip, InjectsOnlyWhenTheVcpuCanTakeIt)
{
    UserChip u(1);
    FakeVcpu& v = u.vcpu(0);
    u.apic_write(0, Lapic::kRegSvr, kSvrEnabled);
    u.msi(0, 0x40);
    v.ready = false;
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_TRUE(v.injected.empty()) << "KVM_INTERRUPT without ready_for_interrupt_injection would overwrite";
    EXPECT_TRUE(v.window);
    v.ready = true;
    v.if_flag = false;
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_TRUE(v.injected.empty()) << "IF=0";
    EXPECT_TRUE(v.window);
    v.if_flag = true;
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected, std::vector<uint8_t>{0x40});
    EXPECT_FALSE(v.window) << "a stale window request makes every entry an exit";
    EXPECT_EQ(u.apic_read(0, Lapic::kRegIsr + 0x20) & 1u, 1u) << "0x40 in service (ISR bit 64)";
}

TEST(UserIrqChip, OneVectorPerEntryTheHighestThePprAllows)
{
    UserChip u(1);
    FakeVcpu& v = u.vcpu(0);
    u.apic_write(0, Lapic::kRegSvr, kSvrEnabled);
    u.msi(0, 0x41);
    u.msi(0, 0x52);
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected, std::vector<uint8_t>{0x52});
    // 0x41's class (4) is below the PPR's (5) until the EOI: nothing to wait for.
    EXPECT_FALSE(v.window);
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected.size(), 1u);
    u.apic_write(0, Lapic::kRegEoi, 0);
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected, (std::vector<uint8_t>{0x52, 0x41}));
}

TEST(UserIrqChip, WindowRequestedForASecondVectorOfAHigherClass)
{
    UserChip u(1);
    FakeVcpu& v = u.vcpu(0);
    u.apic_write(0, Lapic::kRegSvr, kSvrEnabled);
    u.msi(0, 0x41);
    ASSERT_TRUE(u.chip.before_run(v));
    u.msi(0, 0x61);  // arrives while 0x41 is in service: class 6 > 4, so deliverable
    v.ready = false;   // the entry that injected 0x41 has not completed yet
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_TRUE(v.window);
    v.ready = true;
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected, (std::vector<uint8_t>{0x41, 0x61}));
    EXPECT_FALSE(v.window);
}

TEST(UserIrqChip, HaltWithIfSleepsUntilAnInterruptArrives)
{
    UserChip u(1);
    FakeVcpu& v = u.vcpu(0);
    u.apic_write(0, Lapic::kRegSvr, kSvrEnabled);
    u.chip.on_halt(v);
    auto f = run_async(u, 0);
    EXPECT_TRUE(still_blocked(f)) << "a halted vCPU with nothing to take must not run";
    u.msi(0, 0x40);
    ASSERT_TRUE(returns(f));
    EXPECT_TRUE(f.get());
    EXPECT_EQ(v.injected, std::vector<uint8_t>{0x40});
}

TEST(UserIrqChip, HaltWithInterruptsOffIgnoresFixedVectorsButWakesOnNmi)
{
    UserChip u(1);
    FakeVcpu& v = u.vcpu(0);
    u.apic_write(0, Lapic::kRegSvr, kSvrEnabled);
    v.if_flag = false;
    u.chip.on_halt(v);
    auto f = run_async(u, 0);
    u.msi(0, 0x40);
    EXPECT_TRUE(still_blocked(f)) << "cli; hlt stays halted for a fixed interrupt";
    u.msi(0, 0, 0x400);  // delivery mode NMI
    ASSERT_TRUE(returns(f));
    EXPECT_TRUE(f.get());
    EXPECT_EQ(v.nmis, 1u);
    EXPECT_TRUE(v.injected.empty());
}

TEST(UserIrqChip, KickEndsTheWaitButTheVcpuStaysHalted)
{
    UserChip u(1);
    FakeVcpu& v = u.vcpu(0);
    v.if_flag = false;
    u.chip.on_halt(v);
    auto f = run_async(u, 0);
    EXPECT_TRUE(still_blocked(f));
    u.chip.kick(v);
    ASSERT_TRUE(returns(f));
    EXPECT_FALSE(f.get()) << "kicked: the loop looks at the machine, the guest does not run";
    EXPECT_GE(v.kicks.load(), 1u);
    auto again = run_async(u, 0);
    EXPECT_TRUE(still_blocked(again)) << "a kick is not a wake-up from HLT";
    u.chip.kick(v);
    ASSERT_TRUE(returns(again));
    EXPECT_FALSE(again.get());
}

TEST(UserIrqChip, ApWaitsForInitAndSipiFromTheBootCpu)
{
    UserChip u(2);
    FakeVcpu& ap = u.vcpu(1);
    auto f = run_async(u, 1);
    EXPECT_TRUE(still_blocked(f)) << "an AP must not run before its SIPI";
    u.apic_write(0, Lapic::kRegSvr, kSvrEnabled);
    u.apic_write(0, Lapic::kRegIcrHigh, 1u << 24);       // destination APIC ID 1
    u.apic_write(0, Lapic::kRegIcrLow, 0x0000c500);      // INIT, level, assert
    u.apic_write(0, Lapic::kRegIcrLow, 0x00008500);      // INIT level de-assert: no message
    u.apic_write(0, Lapic::kRegIcrLow, 0x0000069a);      // SIPI, vector 0x9a
    u.apic_write(0, Lapic::kRegIcrLow, 0x0000069b);      // second SIPI: the AP runs already
    ASSERT_TRUE(returns(f));
    EXPECT_TRUE(f.get());
    EXPECT_EQ(ap.inits, 1u);
    bool counted = false;
    for (const auto& line : u.chip.stats().details) counted |= line.find("init=1 sipi=2") != std::string::npos;
    EXPECT_TRUE(counted) << "IPIs by type: one INIT (the de-assert sends nothing), two SIPIs";
    ASSERT_TRUE(ap.started_at_sipi.has_value());
    EXPECT_EQ(*ap.started_at_sipi, 0x9a) << "the first SIPI starts it, the second is ignored";
    ASSERT_TRUE(u.chip.before_run(ap));
    EXPECT_EQ(*ap.started_at_sipi, 0x9a);
}

TEST(UserIrqChip, Cr8AndTheTprAreOneRegister)
{
    UserChip u(1);
    FakeVcpu& v = u.vcpu(0);
    u.apic_write(0, Lapic::kRegSvr, kSvrEnabled);
    ASSERT_TRUE(u.chip.before_run(v));  // first entry: CR8 syncing starts after it
    v.cr8 = 5;                          // the guest raised CR8 (no exit for that)
    u.msi(0, 0x45);
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_TRUE(v.injected.empty()) << "class 4 is masked by CR8 = 5";
    EXPECT_EQ(u.apic_read(0, Lapic::kRegTpr), 0x50u) << "TPR[7:4] = CR8";
    EXPECT_FALSE(v.window);
    v.cr8 = 0;  // lowered: KVM_EXIT_SET_TPR
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected, std::vector<uint8_t>{0x45});
    u.apic_write(0, Lapic::kRegTpr, 0x70);
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.cr8_set, 7) << "an MMIO TPR write reaches CR8 at the next entry";
}

// A KVM that never reports KVM_EXIT_SET_TPR (this project's software hosts):
// while a vector waits on the TPR alone, the vCPU is kicked so that its CR8
// is read again; once nothing waits on the TPR, the kicks stop.
TEST(UserIrqChip, VectorHeldByTheTprAloneGetsTheVcpuKicked)
{
    UserChip u(1);
    FakeVcpu& v = u.vcpu(0);
    u.apic_write(0, Lapic::kRegSvr, kSvrEnabled);
    ASSERT_TRUE(u.chip.before_run(v));
    v.cr8 = 5;
    u.msi(0, 0x45);
    ASSERT_TRUE(u.chip.before_run(v));
    ASSERT_TRUE(v.injected.empty());
    const unsigned before = v.kicks.load();
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (v.kicks.load() == before && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
    ASSERT_GT(v.kicks.load(), before) << "no kick while a vector waits on CR8";
    v.cr8 = 0;  // what the guest did meanwhile, seen at the kicked exit
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected, std::vector<uint8_t>{0x45});
    u.apic_write(0, Lapic::kRegEoi, 0);
    ASSERT_TRUE(u.chip.before_run(v));
    const unsigned settled = v.kicks.load();
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(v.kicks.load(), settled) << "nothing waits on the TPR: no polling";
}

TEST(UserIrqChip, LevelEoiGoesBackToTheIoapic)
{
    UserChip u(1);
    FakeVcpu& v = u.vcpu(0);
    u.apic_write(0, Lapic::kRegSvr, kSvrEnabled);
    // IOREDTBL5 (index 0x1a): vector 0x45, fixed, physical, level (bit 15), destination 0.
    u.ioapic_write(0x1b, 0);
    u.ioapic_write(0x1a, 0x0000'8045);
    u.chip.set_gsi_level(5, true);
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected, std::vector<uint8_t>{0x45});
    EXPECT_NE(u.ioapic_read(0x1a) & (1u << 14), 0u) << "remote IRR set while in service";
    u.chip.set_gsi_level(5, false);
    u.apic_write(0, Lapic::kRegEoi, 0);
    EXPECT_EQ(u.ioapic_read(0x1a) & (1u << 14), 0u) << "the LAPIC's EOI (TMR set) cleared remote IRR";
}

// With reinject, a PIT tick sent through the IOAPIC waits for the guest's
// EOI of its vector before the next one goes (as KVM's PIT waits for its
// acknowledgement notifier): ticks never merge into one IRR bit.
TEST(UserIrqChip, PitTicksThroughTheIoapicWaitForTheirEoi)
{
    UserChip u(1);
    FakeVcpu& v = u.vcpu(0);
    u.apic_write(0, Lapic::kRegSvr, kSvrEnabled);
    u.ioapic_write(0x15, 0);
    u.ioapic_write(0x14, 0x30);             // IOREDTBL2: vector 0x30, edge, unmasked
    u.out(0x43, 0x34), u.out(0x40, 0xa9), u.out(0x40, 0x04);  // channel 0, mode 2, 1193: 1 kHz
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (u.apic_read(0, Lapic::kRegIrr + 0x10) == 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(1ms);
    ASSERT_TRUE(u.chip.before_run(v));
    ASSERT_EQ(v.injected, std::vector<uint8_t>{0x30});
    std::this_thread::sleep_for(20ms);  // 20 periods, no EOI
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected.size(), 1u) << "the next tick waits for the EOI";
    EXPECT_EQ(u.apic_read(0, Lapic::kRegIrr + 0x10), 0u) << "and is not left merging in IRR";
    u.apic_write(0, Lapic::kRegEoi, 0);
    while (u.apic_read(0, Lapic::kRegIrr + 0x10) == 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(1ms);
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected, (std::vector<uint8_t>{0x30, 0x30})) << "after the EOI the waiting tick goes";
}

TEST(UserIrqChip, The8259AReachesTheBootCpuAsExtInt)
{
    UserChip u(1);
    FakeVcpu& v = u.vcpu(0);
    // ICW1 (edge, cascade, ICW4), ICW2 vector base 0x20, ICW3 slave on IR2,
    // ICW4 8086 mode; OCW1 unmasks IR3 only (and the cascade).
    u.out(0x20, 0x11);
    u.out(0x21, 0x20);
    u.out(0x21, 0x04);
    u.out(0x21, 0x01);
    u.out(0x21, 0xf3);
    v.ready = false;
    u.chip.set_gsi_level(3, true);
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_TRUE(v.window) << "the 8259A's INT waits for the window";
    EXPECT_GE(v.kicks.load(), 1u) << "the boot vCPU was kicked to look";
    v.ready = true;
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected, std::vector<uint8_t>{0x23});
}

TEST(UserIrqChip, TscDeadlineFiresThroughTheTimerThread)
{
    UserChip u(1);
    FakeVcpu& v = u.vcpu(0);
    u.apic_write(0, Lapic::kRegSvr, kSvrEnabled);
    u.apic_write(0, Lapic::kRegLvtTimer, (2u << 17) | 0x30);  // TSC-deadline mode, vector 0x30
    ASSERT_TRUE(u.chip.before_run(v));
    v.tsc = 1'000'000;
    const unsigned kicks = v.kicks.load();
    ASSERT_TRUE(u.chip.write_msr(v, Lapic::kMsrTscDeadline, v.tsc + 2'000'000));  // 2 ms ahead at 1 GHz
    uint64_t value = 0;
    ASSERT_TRUE(u.chip.read_msr(v, Lapic::kMsrTscDeadline, value));
    EXPECT_EQ(value, v.tsc + 2'000'000);
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (v.kicks.load() == kicks && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
    ASSERT_GT(v.kicks.load(), kicks) << "the expiry kicks the running vCPU";
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected, std::vector<uint8_t>{0x30});
    ASSERT_TRUE(u.chip.read_msr(v, Lapic::kMsrTscDeadline, value));
    EXPECT_EQ(value, 0u) << "reads 0 once fired";
}

TEST(UserIrqChip, X2apicSelfIpiAndIcrThroughMsrs)
{
    UserChip u(2);
    FakeVcpu& v = u.vcpu(0);
    ASSERT_TRUE(u.chip.before_run(v));
    uint64_t value;
    EXPECT_FALSE(u.chip.read_msr(v, 0x802, value)) << "x2APIC MSRs #GP in xAPIC mode";
    v.apic_base = Lapic::kDefaultBase | Lapic::kBaseBsp | Lapic::kBaseEnable | Lapic::kBaseX2apic;  // WRMSR 0x1b
    ASSERT_TRUE(u.chip.before_run(v));
    ASSERT_TRUE(u.chip.write_msr(v, 0x80f, kSvrEnabled));
    ASSERT_TRUE(u.chip.read_msr(v, 0x802, value));
    EXPECT_EQ(value, 0u) << "x2APIC ID";
    ASSERT_TRUE(u.chip.write_msr(v, 0x83f, 0x55));  // SELF IPI
    ASSERT_TRUE(u.chip.before_run(v));
    EXPECT_EQ(v.injected, std::vector<uint8_t>{0x55});
    EXPECT_FALSE(u.chip.write_msr(v, 0x83f, 0x155)) << "reserved bits #GP";
    // An NMI IPI to APIC 1 through the 64-bit ICR (destination in 63:32).
    ASSERT_TRUE(u.chip.write_msr(v, 0x830, (uint64_t{1} << 32) | 0x400));
    auto f = run_async(u, 1);  // the AP is still waiting for SIPI: an NMI does not start it
    EXPECT_TRUE(still_blocked(f));
    u.chip.kick(u.vcpu(1));
    ASSERT_TRUE(returns(f));
    EXPECT_FALSE(f.get());
}

TEST(UserIrqChip, IpiToNobodyIsCountedNotFatal)
{
    UserChip u(1);
    u.apic_write(0, Lapic::kRegSvr, kSvrEnabled);
    u.apic_write(0, Lapic::kRegIcrHigh, 7u << 24);  // no APIC 7
    u.apic_write(0, Lapic::kRegIcrLow, 0x40);
    u.apic_write(0, Lapic::kRegIcrLow, 0x05);  // illegal vector: ESR, nothing sent
    u.apic_write(0, Lapic::kRegEsr, 0);
    EXPECT_EQ(u.apic_read(0, Lapic::kRegEsr), Lapic::kEsrSendIllegalVector);
    const IrqChipStats s = u.chip.stats();
    bool found = false;
    for (const auto& line : s.details) found |= line.find("undeliverable=1") != std::string::npos;
    EXPECT_TRUE(found) << "the IPI to APIC 7 is counted undeliverable";
}

// Split mode's ExtINT path uses the same vCPU interface.
TEST(SplitIrqChip, ExtIntWaitsForTheWindowAndSurvivesARefusal)
{
    SplitIrqChip chip(PitPolicy::kReinject);
    FakeVcpu v(0);
    Bus pio{"pio"}, mmio{"mmio"};
    chip.attach_vcpu(v);
    chip.attach_buses(pio, mmio);
    for (auto [port, value] : {std::pair{0x20, 0x11}, {0x21, 0x20}, {0x21, 0x04}, {0x21, 0x01}, {0x21, 0xf3}}) {
        const uint8_t b = static_cast<uint8_t>(value);
        pio.write(static_cast<uint16_t>(port), {&b, 1});
    }
    chip.set_gsi_level(3, true);
    v.ready = false;
    ASSERT_TRUE(chip.before_run(v));
    EXPECT_TRUE(v.window);
    EXPECT_TRUE(v.injected.empty());
    v.ready = true;
    ASSERT_TRUE(chip.before_run(v));
    EXPECT_EQ(v.injected, std::vector<uint8_t>{0x23});
    EXPECT_FALSE(v.window);
    chip.set_gsi_level(3, false);
    ASSERT_TRUE(chip.before_run(v));
    EXPECT_FALSE(v.window) << "nothing pending: no window";
}

}  // namespace
}  // namespace kvmini
