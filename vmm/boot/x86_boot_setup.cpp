#include "vmm/boot/x86_boot_setup.h"

#include <array>
#include <string>

#include "vmm/boot/boot_file.h"
#include "vmm/error.h"

namespace kvmini::boot_tables {

namespace {

using boot_util::hex;

void require_ram(const GuestMemory& mem, uint64_t gpa, uint64_t len, const char* what)
{
    if (!mem.contains(gpa, len))
        throw Error(std::string("guest RAM (") + std::to_string(mem.size()) + " bytes) does not cover the " + what +
                    " at " + hex(gpa) + ".." + hex(gpa + len));
}

}  // namespace

uint64_t gdt_entry(unsigned index)
{
    if (index >= kBootGdtEntries)
        throw Error("boot GDT has " + std::to_string(kBootGdtEntries) + " entries, no entry " + std::to_string(index));
    return kBootGdt[index];
}

SegmentFields segment_for_selector(uint16_t selector)
{
    if ((selector & 7) != 0 || selector == 0)
        throw Error("selector " + hex(selector) + " is not a boot GDT code/data selector");
    return decode_segment_descriptor(gdt_entry(selector >> 3), selector);
}

void write_boot_gdt(GuestMemory& mem)
{
    require_ram(mem, layout::kGdtAddr, sizeof(kBootGdt), "boot GDT");
    mem.write(layout::kGdtAddr, kBootGdt, sizeof(kBootGdt));
}

void write_boot_idt(GuestMemory& mem)
{
    require_ram(mem, layout::kIdtAddr, kBootIdtBytes, "boot IDT");
    mem.fill(layout::kIdtAddr, 0, kBootIdtBytes);
}

uint64_t write_identity_page_tables(GuestMemory& mem)
{
    require_ram(mem, layout::kPml4Addr, kPageTableBytes, "PML4");
    require_ram(mem, layout::kPdptAddr, kPageTableBytes, "PDPT");
    require_ram(mem, layout::kPdAddr, kPageDirectories * kPageTableBytes, "page directories");

    std::array<uint64_t, kEntriesPerTable> table{};
    table[0] = layout::kPdptAddr | kPtePresent | kPteWritable;
    mem.write(layout::kPml4Addr, table.data(), kPageTableBytes);

    table.fill(0);
    for (uint64_t i = 0; i < kPageDirectories; ++i)
        table[i] = (layout::kPdAddr + i * kPageTableBytes) | kPtePresent | kPteWritable;
    mem.write(layout::kPdptAddr, table.data(), kPageTableBytes);

    for (uint64_t d = 0; d < kPageDirectories; ++d) {
        for (uint64_t i = 0; i < kEntriesPerTable; ++i)
            table[i] = ((d * kEntriesPerTable + i) * kLargePageBytes) | kPtePresent | kPteWritable | kPdePageSize;
        mem.write(layout::kPdAddr + d * kPageTableBytes, table.data(), kPageTableBytes);
    }
    return layout::kPml4Addr;
}

uint64_t write_boot_cpu_tables(GuestMemory& mem)
{
    write_boot_gdt(mem);
    write_boot_idt(mem);
    return write_identity_page_tables(mem);
}

}  // namespace kvmini::boot_tables
