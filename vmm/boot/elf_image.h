// The ELF facts the kernel loaders need (class, machine, type, entry, PT_LOAD
// segments), read from either ELF32 or ELF64 with the layouts of the System V
// ABI ("ELF Header", "Program Header") as <elf.h> declares them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/boot/boot_file.h"
#include "vmm/guest_memory.h"

namespace kvmini::boot_util {

// x86-64 kernels are linked at -2 GiB (Documentation/x86/x86_64/mm.rst,
// "kernel text mapping"); an entry at or above this is virtual.
inline constexpr uint64_t kKernelVirtualBase = 0xffffffff80000000ull;

struct ElfLoadSegment {
    unsigned index;  // program header number, for messages
    uint64_t offset;
    uint64_t vaddr;
    uint64_t paddr;
    uint64_t filesz;
    uint64_t memsz;
};

struct ElfImage {
    unsigned elf_class;  // ELFCLASS32 / ELFCLASS64
    uint16_t machine;    // e_machine
    uint16_t type;       // e_type
    uint64_t entry;      // e_entry
    std::vector<ElfLoadSegment> loads;  // PT_LOADs with p_memsz > 0
};

bool has_elf_magic(std::span<const uint8_t> start);
const char* elf_machine_name(uint16_t machine);
const char* elf_type_name(uint16_t type);  // "ET_DYN, a shared object or PIE"

// Parses the ELF header and program headers. Throws (via f.fail / f.require)
// for: no ELF magic, unknown class, big-endian data, truncated header or
// program header table, a PT_LOAD whose file bytes lie outside the file, or
// p_filesz > p_memsz. Machine and type are the caller's to judge.
ElfImage read_elf(const BootFile& f);

// [lowest p_paddr, highest p_paddr + p_memsz) of the PT_LOADs. Throws if a
// segment is not inside guest RAM or starts below `min_paddr`.
struct PhysRange {
    uint64_t start;
    uint64_t end;
};
PhysRange check_elf_segments(const BootFile& f, const ElfImage& elf, const GuestMemory& mem, uint64_t min_paddr);
// Copies the PT_LOADs to p_paddr and zeroes p_memsz - p_filesz after each.
void load_elf_segments(const BootFile& f, const ElfImage& elf, GuestMemory& mem);
// e_entry as a physical address: as is when a PT_LOAD's paddr range holds it
// (and it is below kKernelVirtualBase), else translated through the PT_LOAD
// whose vaddr range holds it. Throws if neither.
uint64_t elf_entry_physical(const BootFile& f, const ElfImage& elf);

}  // namespace kvmini::boot_util
