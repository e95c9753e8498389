#include "vmm/boot/elf_image.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace kvmini::boot_util {

bool has_elf_magic(std::span<const uint8_t> start)
{
    return start.size() >= SELFMAG && std::memcmp(start.data(), ELFMAG, SELFMAG) == 0;
}

const char* elf_machine_name(uint16_t machine)
{
    switch (machine) {
    case EM_386: return "i386";
    case EM_X86_64: return "x86-64";
    case EM_ARM: return "ARM";
    case EM_AARCH64: return "AArch64";
    case EM_RISCV: return "RISC-V";
    case EM_PPC: return "PowerPC";
    case EM_PPC64: return "PowerPC64";
    case EM_S390: return "S/390";
    case EM_MIPS: return "MIPS";
    case EM_SPARCV9: return "SPARC V9";
    case EM_LOONGARCH: return "LoongArch";
    default: return "unknown machine";
    }
}

const char* elf_type_name(uint16_t type)
{
    switch (type) {
    case ET_NONE: return "ET_NONE";
    case ET_REL: return "ET_REL, a relocatable object";
    case ET_EXEC: return "ET_EXEC, an executable";
    case ET_DYN: return "ET_DYN, a shared object or PIE";
    case ET_CORE: return "ET_CORE, a core dump";
    default: return "unknown type";
    }
}

namespace {

// Reads the class-specific headers into one shape.
template <typename Ehdr, typename Phdr>
ElfImage read_elf_class(const BootFile& f, unsigned elf_class)
{
    const auto eh = f.read_obj<Ehdr>(0, "ELF header");
    ElfImage img{elf_class, eh.e_machine, eh.e_type, eh.e_entry, {}};
    if (eh.e_version != EV_CURRENT) f.fail("ELF version " + std::to_string(eh.e_version) + ", expected 1");
    if (eh.e_phnum == 0) f.fail("ELF file has no program headers, nothing to load");
    if (eh.e_phnum == PN_XNUM) f.fail("ELF file has more than 65534 program headers (PN_XNUM), not a kernel");
    if (eh.e_phentsize != sizeof(Phdr))
        f.fail("ELF e_phentsize is " + std::to_string(eh.e_phentsize) + ", expected " + std::to_string(sizeof(Phdr)));
    const uint64_t table_bytes = uint64_t{eh.e_phnum} * sizeof(Phdr);
    f.require(eh.e_phoff, table_bytes, "program header table");
    std::vector<Phdr> ph(eh.e_phnum);
    f.read(eh.e_phoff, ph.data(), table_bytes, "program header table");
    for (unsigned i = 0; i < ph.size(); ++i) {
        const Phdr& p = ph[i];
        if (p.p_type != PT_LOAD || p.p_memsz == 0) continue;
        const std::string name = "PT_LOAD segment " + std::to_string(i);
        if (p.p_filesz > p.p_memsz)
            f.fail(name + " has p_filesz " + hex(p.p_filesz) + " > p_memsz " + hex(p.p_memsz));
        f.require(p.p_offset, p.p_filesz, name);
        img.loads.push_back({i, p.p_offset, p.p_vaddr, p.p_paddr, p.p_filesz, p.p_memsz});
    }
    if (img.loads.empty()) f.fail("ELF file has no PT_LOAD segments, nothing to load");
    return img;
}

}  // namespace

ElfImage read_elf(const BootFile& f)
{
    const std::vector<uint8_t> ident = f.read_prefix(EI_NIDENT);
    if (!has_elf_magic(ident)) f.fail("not an ELF file (no \\x7fELF magic)");
    f.require(0, EI_NIDENT, "ELF identification");
    if (ident[EI_DATA] != ELFDATA2LSB) f.fail("big-endian or invalid ELF data encoding, x86 is little-endian");
    switch (ident[EI_CLASS]) {
    case ELFCLASS32: return read_elf_class<Elf32_Ehdr, Elf32_Phdr>(f, ELFCLASS32);
    case ELFCLASS64: return read_elf_class<Elf64_Ehdr, Elf64_Phdr>(f, ELFCLASS64);
    default: f.fail("invalid ELF class " + std::to_string(ident[EI_CLASS]));
    }
}

PhysRange check_elf_segments(const BootFile& f, const ElfImage& elf, const GuestMemory& mem, uint64_t min_paddr)
{
    PhysRange r{UINT64_MAX, 0};
    for (const ElfLoadSegment& s : elf.loads) {
        const std::string name = "PT_LOAD segment " + std::to_string(s.index);
        if (s.paddr + s.memsz < s.paddr)
            f.fail(name + " wraps around the address space (p_paddr " + hex(s.paddr) + ", p_memsz " + hex(s.memsz) + ")");
        if (!mem.contains(s.paddr, s.memsz))
            f.fail(name + " at physical " + hex(s.paddr) + ".." + hex(s.paddr + s.memsz) +
                   " is outside guest RAM (" + std::to_string(mem.size() >> 20) + " MiB)");
        if (s.paddr < min_paddr)
            f.fail(name + " at physical " + hex(s.paddr) + " is below " + hex(min_paddr) +
                   ", where kvmini keeps the boot structures");
        r.start = std::min(r.start, s.paddr);
        r.end = std::max(r.end, s.paddr + s.memsz);
    }
    return r;
}

void load_elf_segments(const BootFile& f, const ElfImage& elf, GuestMemory& mem)
{
    for (const ElfLoadSegment& s : elf.loads) {
        const std::string name = "PT_LOAD segment " + std::to_string(s.index);
        f.copy_to_guest(mem, s.paddr, s.offset, s.filesz, name);
        if (s.memsz > s.filesz && !mem.fill(s.paddr + s.filesz, 0, s.memsz - s.filesz))
            f.fail(name + " bss is outside guest RAM");
    }
}

uint64_t elf_entry_physical(const BootFile& f, const ElfImage& elf)
{
    if (elf.entry < kKernelVirtualBase) {
        for (const ElfLoadSegment& s : elf.loads)
            if (elf.entry >= s.paddr && elf.entry - s.paddr < s.memsz) return elf.entry;
    }
    for (const ElfLoadSegment& s : elf.loads)
        if (elf.entry >= s.vaddr && elf.entry - s.vaddr < s.memsz) return elf.entry - s.vaddr + s.paddr;
    f.fail("ELF entry point " + hex(elf.entry) + " is not inside any PT_LOAD segment");
}

}  // namespace kvmini::boot_util
