// write_mptable() against the byte layouts of the Intel MultiProcessor
// Specification 1.4 (4.1 floating pointer, 4.2 header, 4.3 entries). The
// table is parsed here from raw bytes at the spec offsets, not through the
// structs in mptable.h.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "devices/le.h"
#include "irqchip/gsi_layout.h"
#include "vmm/boot/mptable.h"
#include "vmm/error.h"
#include "vmm/guest_memory.h"

namespace kvmini {
namespace {

constexpr uint64_t kFloating = 0xf0000;  // layout::kMpTableAddr

struct Raw {
    std::vector<uint8_t> b;
    uint8_t u8(size_t off) const { return b.at(off); }
    uint16_t u16(size_t off) const { return static_cast<uint16_t>(le::load(at(off, 2))); }
    uint32_t u32(size_t off) const { return static_cast<uint32_t>(le::load(at(off, 4))); }
    std::string str(size_t off, size_t len) const { return std::string(b.begin() + off, b.begin() + off + len); }
    std::span<const uint8_t> at(size_t off, size_t n) const
    {
        b.at(off + n - 1);  // std::out_of_range past the end
        return std::span<const uint8_t>(b).subspan(off, n);
    }
};

Raw read_raw(const GuestMemory& mem, uint64_t gpa, uint64_t len)
{
    Raw r{std::vector<uint8_t>(len)};
    EXPECT_TRUE(mem.read(gpa, r.b.data(), len));
    return r;
}

uint8_t sum(const Raw& r)
{
    uint8_t s = 0;
    for (uint8_t v : r.b) s = static_cast<uint8_t>(s + v);
    return s;
}

struct Entry {
    uint8_t type;
    Raw raw;  // the entry's bytes
};

struct Table {
    Raw fp;        // floating pointer
    Raw header;    // 44-byte header
    Raw base;      // header + entries
    std::vector<Entry> entries;
};

// Finds and parses the table the way an OS does: floating pointer in the BIOS
// area, then the configuration table it points at.
Table parse(const GuestMemory& mem)
{
    Table t;
    t.fp = read_raw(mem, kFloating, 16);
    EXPECT_EQ(t.fp.str(0, 4), "_MP_");
    const uint32_t cfg = t.fp.u32(4);
    t.header = read_raw(mem, cfg, 44);
    EXPECT_EQ(t.header.str(0, 4), "PCMP");
    t.base = read_raw(mem, cfg, t.header.u16(4));
    size_t off = 44;
    for (unsigned i = 0; i < t.header.u16(34); ++i) {
        const uint8_t type = t.base.u8(off);
        const size_t len = type == 0 ? 20 : 8;  // table 4-3
        t.entries.push_back({type, Raw{std::vector<uint8_t>(t.base.b.begin() + off, t.base.b.begin() + off + len)}});
        off += len;
    }
    EXPECT_EQ(off, t.base.b.size()) << "base_length disagrees with the entries";
    return t;
}

std::vector<Raw> of_type(const Table& t, uint8_t type)
{
    std::vector<Raw> out;
    for (const Entry& e : t.entries)
        if (e.type == type) out.push_back(e.raw);
    return out;
}

TEST(MpTable, FloatingPointerAndHeader)
{
    GuestMemory mem(64 << 20);
    mem.fill(0xf0000, 0xff, 0x10000);
    write_mptable(mem, MpTableConfig{1, false, {}});
    const Table t = parse(mem);

    // 4.1: pointer to the table right after, length 1 paragraph, rev 1.4,
    // checksum, feature bytes all 0 (table present, virtual wire mode).
    EXPECT_EQ(t.fp.u32(4), 0xf0010u);
    EXPECT_EQ(t.fp.u8(8), 1);
    EXPECT_EQ(t.fp.u8(9), 4);
    EXPECT_EQ(sum(t.fp), 0);
    for (size_t off = 11; off < 16; ++off) EXPECT_EQ(t.fp.u8(off), 0) << off;

    // 4.2.
    const unsigned entries = 1 /*cpu*/ + 1 /*ISA*/ + 1 /*IOAPIC*/ + 15 /*ISA IRQs but 2*/ + 2 /*LINT0/1*/;
    EXPECT_EQ(t.header.u16(4), 44 + 20 + 8 * (entries - 1));
    EXPECT_EQ(t.header.u8(6), 4);
    EXPECT_EQ(sum(t.base), 0);
    EXPECT_EQ(t.header.str(8, 8), "KVMINI  ");
    EXPECT_EQ(t.header.u32(28), 0u);  // no OEM table
    EXPECT_EQ(t.header.u16(32), 0u);
    EXPECT_EQ(t.header.u16(34), entries);
    EXPECT_EQ(t.header.u32(36), 0xfee00000u);
    EXPECT_EQ(t.header.u16(40), 0u);  // no extended table
    EXPECT_EQ(t.header.u8(42), 0u);

    // Entries sorted by type (4.3).
    for (size_t i = 1; i < t.entries.size(); ++i) EXPECT_LE(t.entries[i - 1].type, t.entries[i].type) << i;
}

TEST(MpTable, ProcessorEntries)
{
    GuestMemory mem(64 << 20);
    MpTableConfig c;
    c.cpus = 4;
    write_mptable(mem, c);
    const Table t = parse(mem);
    const auto cpus = of_type(t, 0);
    ASSERT_EQ(cpus.size(), 4u);
    for (unsigned i = 0; i < 4; ++i) {
        EXPECT_EQ(cpus[i].u8(1), i);                   // local APIC id
        EXPECT_EQ(cpus[i].u8(2), 0x14);                // local APIC version
        EXPECT_EQ(cpus[i].u8(3), i == 0 ? 0x3 : 0x1);  // EN, and BP on the first
        EXPECT_EQ(cpus[i].u32(4), 0x600u);             // family 6
        EXPECT_EQ(cpus[i].u32(8), 0x201u);             // FPU | APIC
        EXPECT_EQ(cpus[i].u32(12), 0u);
        EXPECT_EQ(cpus[i].u32(16), 0u);
    }
    EXPECT_EQ(sum(t.base), 0);
    // The IOAPIC's id comes after the CPUs' ids.
    const auto ioapics = of_type(t, 2);
    ASSERT_EQ(ioapics.size(), 1u);
    EXPECT_EQ(ioapics[0].u8(1), 4);
}

TEST(MpTable, CpuSignatureFromConfig)
{
    GuestMemory mem(64 << 20);
    MpTableConfig c;
    c.cpus = 2;
    c.cpu_signature = 0x000806ec;
    c.cpu_features = 0x178bfbff;
    write_mptable(mem, c);
    const auto cpus = of_type(parse(mem), 0);
    ASSERT_EQ(cpus.size(), 2u);
    EXPECT_EQ(cpus[1].u32(4), 0x000806ecu);
    EXPECT_EQ(cpus[1].u32(8), 0x178bfbffu);
}

TEST(MpTable, IsaBusIoapicAndInterrupts)
{
    GuestMemory mem(64 << 20);
    MpTableConfig c;
    c.cpus = 2;
    write_mptable(mem, c);
    const Table t = parse(mem);

    const auto buses = of_type(t, 1);
    ASSERT_EQ(buses.size(), 1u);
    EXPECT_EQ(buses[0].u8(1), 0);
    EXPECT_EQ(buses[0].str(2, 6), "ISA   ");

    const auto ioapics = of_type(t, 2);
    ASSERT_EQ(ioapics.size(), 1u);
    EXPECT_EQ(ioapics[0].u8(1), 2);       // id = number of CPUs
    EXPECT_EQ(ioapics[0].u8(2), 0x11);    // KVM's in-kernel IOAPIC version
    EXPECT_EQ(ioapics[0].u8(3), 1);       // enabled
    EXPECT_EQ(ioapics[0].u32(4), 0xfec00000u);

    // 4.3.4: ISA IRQ n -> INTIN n, except IRQ 0 -> INTIN 2 and no IRQ 2.
    const auto ints = of_type(t, 3);
    ASSERT_EQ(ints.size(), 15u);
    std::vector<int> pin_of_irq(16, -1);
    for (const Raw& e : ints) {
        EXPECT_EQ(e.u8(1), 0);     // INT
        EXPECT_EQ(e.u16(2), 0u);   // conforming polarity and trigger
        EXPECT_EQ(e.u8(4), 0);     // ISA bus
        EXPECT_EQ(e.u8(6), 2);     // the IOAPIC
        ASSERT_LT(e.u8(5), 16);
        pin_of_irq[e.u8(5)] = e.u8(7);
    }
    EXPECT_EQ(pin_of_irq[0], 2);
    EXPECT_EQ(pin_of_irq[2], -1);
    for (int irq = 1; irq < 16; ++irq) {
        if (irq != 2) {
            EXPECT_EQ(pin_of_irq[irq], irq) << irq;
        }
    }
    // And that is what gsi_layout.h says.
    for (uint32_t irq = 0; irq < 16; ++irq)
        EXPECT_EQ(pin_of_irq[irq], gsi::ioapic_pin(irq) ? static_cast<int>(*gsi::ioapic_pin(irq)) : -1);

    // 4.3.5: ExtINT on LINT0, NMI on LINT1, to all local APICs.
    const auto locals = of_type(t, 4);
    ASSERT_EQ(locals.size(), 2u);
    EXPECT_EQ(locals[0].u8(1), 3);
    EXPECT_EQ(locals[0].u8(6), 0xff);
    EXPECT_EQ(locals[0].u8(7), 0);
    EXPECT_EQ(locals[1].u8(1), 1);
    EXPECT_EQ(locals[1].u8(6), 0xff);
    EXPECT_EQ(locals[1].u8(7), 1);
}

TEST(MpTable, PciBusAndIntxRoutes)
{
    GuestMemory mem(64 << 20);
    MpTableConfig c;
    c.cpus = 1;
    c.pci_bus = true;
    c.pci_routes = {{1, 0, gsi::pci_intx_gsi(1, 0)}, {2, 1, gsi::pci_intx_gsi(2, 1)}, {31, 3, 23}};
    write_mptable(mem, c);
    const Table t = parse(mem);
    EXPECT_EQ(sum(t.base), 0);
    EXPECT_EQ(sum(t.fp), 0);

    const auto buses = of_type(t, 1);
    ASSERT_EQ(buses.size(), 2u);
    EXPECT_EQ(buses[0].u8(1), 0);
    EXPECT_EQ(buses[0].str(2, 6), "PCI   ");
    EXPECT_EQ(buses[1].u8(1), 1);
    EXPECT_EQ(buses[1].str(2, 6), "ISA   ");

    const auto ints = of_type(t, 3);
    ASSERT_EQ(ints.size(), 15u + 3u);
    std::vector<Raw> pci;
    for (const Raw& e : ints) {
        if (e.u8(4) == 0) {
            pci.push_back(e);
        } else {
            EXPECT_EQ(e.u8(4), 1);  // ISA entries now name bus 1
            EXPECT_EQ(e.u16(2), 0u);
        }
    }
    ASSERT_EQ(pci.size(), 3u);
    // D.3: source IRQ = device << 2 | pin; level (11b << 2), active low (11b).
    EXPECT_EQ(pci[0].u8(5), 1 << 2 | 0);
    EXPECT_EQ(pci[0].u8(7), 17);
    EXPECT_EQ(pci[1].u8(5), 2 << 2 | 1);
    EXPECT_EQ(pci[1].u8(7), 19);
    EXPECT_EQ(pci[2].u8(5), 31 << 2 | 3);
    EXPECT_EQ(pci[2].u8(7), 23);
    for (const Raw& e : pci) {
        EXPECT_EQ(e.u8(1), 0);
        EXPECT_EQ(e.u16(2), 0x0fu);
        EXPECT_EQ(e.u8(6), 1);  // IOAPIC id = 1 CPU
    }
    // Local interrupt entries name the ISA bus.
    for (const Raw& e : of_type(t, 4)) EXPECT_EQ(e.u8(4), 1);
}

TEST(MpTable, IoapicVersionIsConfigurable)
{
    GuestMemory mem(64 << 20);
    MpTableConfig c;
    c.ioapic_version = 0x20;
    write_mptable(mem, c);
    EXPECT_EQ(of_type(parse(mem), 2).at(0).u8(2), 0x20);
}

TEST(MpTable, ManyCpusStillChecksum)
{
    GuestMemory mem(64 << 20);
    MpTableConfig c;
    c.cpus = 254;
    write_mptable(mem, c);
    const Table t = parse(mem);
    EXPECT_EQ(sum(t.base), 0);
    EXPECT_EQ(of_type(t, 0).size(), 254u);
    EXPECT_EQ(of_type(t, 2).at(0).u8(1), 254);
}

TEST(MpTable, AreaIsReservedInTheMemoryMap)
{
    GuestMemory mem(64 << 20);
    bool reserved = false;
    for (const E820Entry& e : mem.e820())
        if (e.type == E820Entry::kReserved && e.addr <= 0xf0000 && e.addr + e.size >= 0x100000) reserved = true;
    EXPECT_TRUE(reserved);
}

TEST(MpTable, BadConfigs)
{
    GuestMemory mem(64 << 20);
    EXPECT_THROW(write_mptable(mem, MpTableConfig{0, false, {}}), Error);
    EXPECT_THROW(write_mptable(mem, MpTableConfig{255, false, {}}), Error);
    EXPECT_THROW(write_mptable(mem, MpTableConfig{1, false, {{1, 0, 17}}}), Error);  // routes without a PCI bus
    EXPECT_THROW(write_mptable(mem, MpTableConfig{1, true, {{32, 0, 17}}}), Error);
    EXPECT_THROW(write_mptable(mem, MpTableConfig{1, true, {{1, 4, 17}}}), Error);
    EXPECT_THROW(write_mptable(mem, MpTableConfig{1, true, {{1, 0, 2}}}), Error);   // GSI 2 has no pin
    EXPECT_THROW(write_mptable(mem, MpTableConfig{1, true, {{1, 0, 24}}}), Error);
    try {
        write_mptable(mem, MpTableConfig{1, false, {{1, 0, 17}}});
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("without a PCI bus"), std::string::npos) << e.what();
    }
    GuestMemory small(512 << 10);  // ends below 0xf0000
    EXPECT_THROW(write_mptable(small, MpTableConfig{1, false, {}}), Error);
}

}  // namespace
}  // namespace kvmini
