// Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI
// finds its CPUs, IOAPIC and interrupt routing. write_mptable() puts the MP
// floating pointer at layout::kMpTableAddr (in the BIOS ROM area the spec
// lets an OS search, 0xf0000-0xfffff, which GuestMemory::e820() reports
// reserved) and the configuration table right after it.
//
// Section references are to MP spec 1.4 (May 1997): 4.1 floating pointer
// (table 4-1), 4.2 configuration table header (table 4-2), 4.3 base table
// entries (table 4-3, in ascending type order), 4.3.1 processor (table 4-4),
// 4.3.2 bus (tables 4-5, 4-8 bus type strings), 4.3.3 I/O APIC (table 4-6),
// 4.3.4 I/O interrupt assignment (tables 4-7, 4-9 interrupt types),
// 4.3.5 local interrupt assignment (table 4-10), D.3 PCI source bus IRQ.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vmm/guest_memory.h"
#include "vmm/memory_layout.h"

namespace kvmini {

namespace mp {

inline constexpr char kFloatingSignature[4] = {'_', 'M', 'P', '_'};  // 4.1
inline constexpr char kConfigSignature[4] = {'P', 'C', 'M', 'P'};    // 4.2
inline constexpr uint8_t kSpecRev14 = 4;                             // 4.1/4.2 SPEC_REV: 04h = 1.4
inline constexpr char kOemId[8] = {'K', 'V', 'M', 'I', 'N', 'I', ' ', ' '};  // space padded (4.2)
inline constexpr char kProductId[12] = {'K', 'V', 'M', 'I', 'N', 'I', ' ', 'P', 'C', ' ', ' ', ' '};
inline constexpr char kBusIsa[6] = {'I', 'S', 'A', ' ', ' ', ' '};   // table 4-8
inline constexpr char kBusPci[6] = {'P', 'C', 'I', ' ', ' ', ' '};

// 4.1: 16 bytes, on a 16-byte boundary.
struct [[gnu::packed]] FloatingPointer {
    char signature[4];      // 0  "_MP_"
    uint32_t config_table;  // 4  physical address of the configuration table
    uint8_t length;         // 8  in 16-byte paragraphs: 1
    uint8_t spec_rev;       // 9
    uint8_t checksum;       // 10 all 16 bytes sum to 0
    uint8_t feature1;       // 11 0: a configuration table is present
    uint8_t feature2;       // 12 bit 7 IMCRP: 0 = virtual wire mode
    uint8_t feature3to5[3]; // 13 reserved, 0
};
static_assert(sizeof(FloatingPointer) == 16);
static_assert(offsetof(FloatingPointer, checksum) == 10);
static_assert(offsetof(FloatingPointer, feature2) == 12);

// 4.2: 44 bytes; the base table (this header plus the entries) sums to 0.
struct [[gnu::packed]] ConfigHeader {
    char signature[4];          // 0  "PCMP"
    uint16_t base_length;       // 4  header + base entries, bytes
    uint8_t spec_rev;           // 6
    uint8_t checksum;           // 7
    char oem_id[8];             // 8
    char product_id[12];        // 16
    uint32_t oem_table;         // 28 0: none
    uint16_t oem_table_size;    // 32
    uint16_t entry_count;       // 34 base table entries
    uint32_t lapic_address;     // 36
    uint16_t ext_length;        // 40 extended table: none
    uint8_t ext_checksum;       // 42
    uint8_t reserved;           // 43
};
static_assert(sizeof(ConfigHeader) == 44);
static_assert(offsetof(ConfigHeader, entry_count) == 34);
static_assert(offsetof(ConfigHeader, lapic_address) == 36);

// Table 4-3 entry types.
enum EntryType : uint8_t {
    kEntryProcessor = 0,
    kEntryBus = 1,
    kEntryIoapic = 2,
    kEntryIoInterrupt = 3,
    kEntryLocalInterrupt = 4,
};

// 4.3.1, 20 bytes.
inline constexpr uint8_t kCpuEnabled = 1u << 0;    // EN
inline constexpr uint8_t kCpuBootstrap = 1u << 1;  // BP
struct [[gnu::packed]] ProcessorEntry {
    uint8_t type;            // 0
    uint8_t lapic_id;        // 1
    uint8_t lapic_version;   // 2
    uint8_t cpu_flags;       // 3
    uint32_t cpu_signature;  // 4 stepping 3:0, model 7:4, family 11:8 (CPUID.1 EAX)
    uint32_t feature_flags;  // 8 CPUID.1 EDX
    uint32_t reserved[2];    // 12
};
static_assert(sizeof(ProcessorEntry) == 20);

// 4.3.2, 8 bytes.
struct [[gnu::packed]] BusEntry {
    uint8_t type;
    uint8_t bus_id;
    char bus_type[6];
};
static_assert(sizeof(BusEntry) == 8);

// 4.3.3, 8 bytes.
inline constexpr uint8_t kIoapicEnabled = 1u << 0;
struct [[gnu::packed]] IoapicEntry {
    uint8_t type;
    uint8_t ioapic_id;
    uint8_t ioapic_version;
    uint8_t flags;
    uint32_t address;
};
static_assert(sizeof(IoapicEntry) == 8);

// 4.3.4 / 4.3.5, 8 bytes each, same layout.
enum InterruptType : uint8_t { kIntInt = 0, kIntNmi = 1, kIntSmi = 2, kIntExtInt = 3 };  // table 4-9
// Flags: polarity bits 1:0 (00 conforms to bus, 01 high, 11 low), trigger
// mode bits 3:2 (00 conforms, 01 edge, 11 level).
inline constexpr uint16_t kPolarityConforms = 0x0;
inline constexpr uint16_t kPolarityActiveLow = 0x3;
inline constexpr uint16_t kTriggerConforms = 0x0 << 2;
inline constexpr uint16_t kTriggerLevel = 0x3 << 2;
struct [[gnu::packed]] InterruptEntry {
    uint8_t type;         // kEntryIoInterrupt or kEntryLocalInterrupt
    uint8_t int_type;     // InterruptType
    uint16_t flags;
    uint8_t src_bus_id;
    uint8_t src_bus_irq;  // ISA: the IRQ; PCI: device << 2 | INTx pin (D.3)
    uint8_t dst_id;       // IOAPIC id, or local APIC id (0xff = all)
    uint8_t dst_pin;      // IOAPIC INTIN#, or LINTIN#
};
static_assert(sizeof(InterruptEntry) == 8);
inline constexpr uint8_t kAllLocalApics = 0xff;
inline constexpr uint8_t kLint0 = 0;
inline constexpr uint8_t kLint1 = 1;

constexpr uint8_t pci_source_irq(uint8_t device, uint8_t pin) { return static_cast<uint8_t>(device << 2 | pin); }

// Local APIC version as KVM's LAPIC reports it (arch/x86/kvm/lapic.c
// APIC_VERSION; SDM vol. 3A 11.4.8: 1xH = integrated APIC).
inline constexpr uint8_t kLapicVersion = 0x14;
// IOAPIC version register value of KVM's in-kernel IOAPIC (82093AA, 0x11,
// arch/x86/kvm/ioapic.h IOAPIC_VERSION_ID); QEMU's user-space one says 0x20.
inline constexpr uint8_t kIoapicVersion82093 = 0x11;
// CPU signature for processor entries when none is given: family 6, model 0,
// stepping 0; features FPU (bit 0) and APIC (bit 9) of CPUID.1 EDX.
inline constexpr uint32_t kDefaultCpuSignature = 6u << 8;
inline constexpr uint32_t kDefaultCpuFeatures = (1u << 0) | (1u << 9);
// APIC ids are 8 bits and 0xff means "all" in local interrupt entries; the
// IOAPIC takes id = cpus, so at most 254 CPUs.
inline constexpr unsigned kMaxCpus = 254;
inline constexpr uint8_t kPciBusId = 0;

}  // namespace mp

// One PCI INTx line of bus 0: device 0..31, pin 0..3 (0 = INTA#), and the
// GSI it is wired to (gsi::pci_intx_gsi() in the usual swizzle).
struct PciIntxRoute {
    uint8_t device;
    uint8_t pin;
    uint32_t gsi;
};

struct MpTableConfig {
    unsigned cpus = 1;        // processor entries, APIC ids 0..cpus-1, BSP = 0
    bool pci_bus = false;     // a PCI bus (id 0; ISA becomes id 1)
    std::vector<PciIntxRoute> pci_routes;  // needs pci_bus
    uint32_t cpu_signature = mp::kDefaultCpuSignature;
    uint32_t cpu_features = mp::kDefaultCpuFeatures;
    uint8_t ioapic_version = mp::kIoapicVersion82093;
};

// Bus ids write_mptable() assigns (4.3.2: ids start at 0): PCI bus 0 is id
// mp::kPciBusId; ISA follows it.
inline uint8_t mp_isa_bus_id(const MpTableConfig& c) { return c.pci_bus ? mp::kPciBusId + 1 : 0; }

// Writes the floating pointer and the configuration table; throws Error for a
// bad config (0 or too many CPUs, PCI routes without a PCI bus, a route with
// a bad device/pin/GSI) or if guest RAM does not cover kMpTableAddr.
void write_mptable(GuestMemory& mem, const MpTableConfig& config);

}  // namespace kvmini
