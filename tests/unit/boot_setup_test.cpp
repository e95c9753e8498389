// The boot GDT, IDT and identity page tables, checked against the raw
// descriptor and page-table-entry bits of the Intel SDM (vol. 3A 3.4.5, 4.5).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "vmm/boot/entry_state.h"
#include "vmm/boot/x86_boot_setup.h"
#include "vmm/error.h"
#include "vmm/guest_memory.h"
#include "vmm/memory_layout.h"

namespace kvmini {
namespace {

uint64_t u64_at(const GuestMemory& mem, uint64_t gpa)
{
    const auto v = mem.read_obj<uint64_t>(gpa);
    EXPECT_TRUE(v.has_value()) << "no RAM at " << gpa;
    return v.value_or(0xdeadbeefdeadbeefull);
}

// A 4-level walk of the tables in guest memory, as the MMU would do it for a
// 2 MiB page. Returns the physical address or ~0 if not mapped.
uint64_t walk(const GuestMemory& mem, uint64_t cr3, uint64_t va)
{
    const uint64_t addr_mask = 0x000ffffffffff000ull;
    const uint64_t pml4e = u64_at(mem, (cr3 & addr_mask) + ((va >> 39) & 511) * 8);
    if (!(pml4e & 1)) return ~0ull;
    const uint64_t pdpte = u64_at(mem, (pml4e & addr_mask) + ((va >> 30) & 511) * 8);
    if (!(pdpte & 1) || (pdpte & 0x80)) return ~0ull;  // we never use 1 GiB pages
    const uint64_t pde = u64_at(mem, (pdpte & addr_mask) + ((va >> 21) & 511) * 8);
    if (!(pde & 1) || !(pde & 0x80)) return ~0ull;
    return (pde & 0x000fffffffe00000ull) | (va & 0x1fffff);
}

TEST(BootGdt, DescriptorValuesAreTheFlatBootSegments)
{
    GuestMemory mem(2 << 20);
    mem.fill(layout::kGdtAddr, 0xee, 64);
    boot_tables::write_boot_gdt(mem);
    // SDM 3.4.5: base 0, limit 0xfffff, G=1; P=1 DPL=0 S=1; code 0xb / data 0x3
    // (accessed); D=1 for 32-bit code and data, L=1 D=0 for 64-bit code.
    EXPECT_EQ(u64_at(mem, 0x500), 0u);
    EXPECT_EQ(u64_at(mem, 0x508), 0x00cf9b000000ffffull);
    EXPECT_EQ(u64_at(mem, 0x510), 0x00af9b000000ffffull);
    EXPECT_EQ(u64_at(mem, 0x518), 0x00cf93000000ffffull);
    // Nothing past the four entries was touched.
    EXPECT_EQ(u64_at(mem, 0x520), 0xeeeeeeeeeeeeeeeeull);
    EXPECT_EQ(boot_tables::kBootGdtr.base, 0x500u);
    EXPECT_EQ(boot_tables::kBootGdtr.limit, 31u);
    for (unsigned i = 0; i < 4; ++i) EXPECT_EQ(boot_tables::gdt_entry(i), u64_at(mem, 0x500 + 8 * i));
    EXPECT_THROW(boot_tables::gdt_entry(4), Error);
}

TEST(BootGdt, SegmentFieldsForKvm)
{
    const auto cs64 = boot_tables::segment_for_selector(boot_selectors::kCode64);
    EXPECT_EQ(cs64.selector, 0x10);
    EXPECT_EQ(cs64.base, 0u);
    EXPECT_EQ(cs64.limit, 0xffffffffu);
    EXPECT_EQ(cs64.type, 0xb);
    EXPECT_TRUE(cs64.s);
    EXPECT_TRUE(cs64.present);
    EXPECT_TRUE(cs64.l);
    EXPECT_FALSE(cs64.db);
    EXPECT_TRUE(cs64.g);
    EXPECT_EQ(cs64.dpl, 0);

    const auto cs32 = boot_tables::segment_for_selector(boot_selectors::kCode32);
    EXPECT_EQ(cs32.type, 0xb);
    EXPECT_FALSE(cs32.l);
    EXPECT_TRUE(cs32.db);
    EXPECT_EQ(cs32.limit, 0xffffffffu);

    const auto ds = boot_tables::segment_for_selector(boot_selectors::kData);
    EXPECT_EQ(ds.selector, 0x18);
    EXPECT_EQ(ds.type, 0x3);
    EXPECT_TRUE(ds.db);
    EXPECT_FALSE(ds.l);
    EXPECT_TRUE(ds.present);

    EXPECT_THROW(boot_tables::segment_for_selector(0), Error);
    EXPECT_THROW(boot_tables::segment_for_selector(0x13), Error);
    EXPECT_THROW(boot_tables::segment_for_selector(0x20), Error);
}

TEST(BootGdt, DecodeHandlesBaseAndByteGranularLimit)
{
    // base 0x12345678, limit 0xabcde, G=0, P=1 DPL=3 S=1 type 2: the bytes
    // SDM figure 3-8 gives are limit 15:0, base 23:0, access, limit 19:16 +
    // flags, base 31:24.
    const uint64_t d = boot_tables::make_segment_descriptor(0x12345678, 0xabcde, 0x80 | 0x60 | 0x10 | 0x2, 0);
    EXPECT_EQ(d, 0x120af2345678bcdeull);
    const auto f = boot_tables::decode_segment_descriptor(d);
    EXPECT_EQ(f.base, 0x12345678u);
    EXPECT_EQ(f.limit, 0xabcdeu);
    EXPECT_EQ(f.dpl, 3);
    EXPECT_EQ(f.type, 2);
    EXPECT_FALSE(f.g);
}

TEST(BootIdt, IsZeroed)
{
    GuestMemory mem(2 << 20);
    mem.fill(layout::kIdtAddr, 0xff, 32);
    boot_tables::write_boot_idt(mem);
    EXPECT_EQ(u64_at(mem, 0x520), 0u);
    EXPECT_EQ(u64_at(mem, 0x528), 0u);
    EXPECT_EQ(u64_at(mem, 0x530), ~0ull);  // only the table itself
    EXPECT_EQ(boot_tables::kBootIdtr.base, 0x520u);
    EXPECT_EQ(boot_tables::kBootIdtr.limit, 15u);
}

TEST(BootPageTables, EntriesMapFourGiBWith2MiBPages)
{
    GuestMemory mem(16 << 20);
    mem.fill(0x9000, 0xa5, 0x6000);  // stale junk must be overwritten
    const uint64_t cr3 = boot_tables::write_identity_page_tables(mem);
    EXPECT_EQ(cr3, 0x9000u);
    // PML4[0] -> PDPT, present + writable; the rest empty.
    EXPECT_EQ(u64_at(mem, 0x9000), 0xa003u);
    for (unsigned i = 1; i < 512; ++i) ASSERT_EQ(u64_at(mem, 0x9000 + 8 * i), 0u) << i;
    // PDPT[0..3] -> the four page directories.
    EXPECT_EQ(u64_at(mem, 0xa000), 0xb003u);
    EXPECT_EQ(u64_at(mem, 0xa008), 0xc003u);
    EXPECT_EQ(u64_at(mem, 0xa010), 0xd003u);
    EXPECT_EQ(u64_at(mem, 0xa018), 0xe003u);
    for (unsigned i = 4; i < 512; ++i) ASSERT_EQ(u64_at(mem, 0xa000 + 8 * i), 0u) << i;
    // PDEs: 2 MiB pages (PS, bit 7), present, writable.
    EXPECT_EQ(u64_at(mem, 0xb000), 0x83u);
    EXPECT_EQ(u64_at(mem, 0xb008), 0x200083u);
    EXPECT_EQ(u64_at(mem, 0xbff8), 0x3fe00083u);
    EXPECT_EQ(u64_at(mem, 0xc000), 0x40000083u);
    EXPECT_EQ(u64_at(mem, 0xeff8), 0xffe00083u);
    for (unsigned i = 0; i < 2048; ++i) ASSERT_EQ(u64_at(mem, 0xb000 + 8 * i), i * 0x200000ull + 0x83) << i;
}

TEST(BootPageTables, WalkIsIdentityBelow4GiBOnly)
{
    GuestMemory mem(16 << 20);
    const uint64_t cr3 = boot_tables::write_boot_cpu_tables(mem);
    for (uint64_t va : {0x0ull, 0x7000ull, 0x1000200ull, 0x7fff0000ull, 0xbfffffffull, 0xfec00000ull, 0xffffffffull})
        EXPECT_EQ(walk(mem, cr3, va), va) << std::hex << va;
    EXPECT_EQ(walk(mem, cr3, 0x100000000ull), ~0ull);
    EXPECT_EQ(walk(mem, cr3, 0xffffffff81000000ull), ~0ull);
}

TEST(BootPageTables, TooLittleRamIsAnError)
{
    GuestMemory mem(0xa000);  // ends inside the PDPT
    try {
        boot_tables::write_identity_page_tables(mem);
        FAIL() << "no Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("PDPT"), std::string::npos) << e.what();
    }
    GuestMemory tiny(0x1000);
    EXPECT_NO_THROW(boot_tables::write_boot_gdt(tiny));
    EXPECT_THROW(boot_tables::write_boot_cpu_tables(tiny), Error);
}

}  // namespace
}  // namespace kvmini
