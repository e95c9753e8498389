#include "vmm/boot/mptable.h"

#include <cstring>
#include <string>

#include "irqchip/gsi_layout.h"
#include "vmm/boot/boot_file.h"
#include "vmm/error.h"

namespace kvmini {

namespace {

using boot_util::hex;

// The spec's checksums: the byte that makes the 8-bit sum of the range 0.
uint8_t checksum_byte(const uint8_t* p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; ++i) sum = static_cast<uint8_t>(sum + p[i]);
    return static_cast<uint8_t>(-sum);
}

class EntryWriter {
public:
    template <typename T>
    void add(const T& entry)
    {
        const size_t at = bytes_.size();
        bytes_.resize(at + sizeof entry);
        std::memcpy(bytes_.data() + at, &entry, sizeof entry);
        ++count_;
    }
    const std::vector<uint8_t>& bytes() const { return bytes_; }
    uint16_t count() const { return count_; }

private:
    std::vector<uint8_t> bytes_;
    uint16_t count_ = 0;
};

void check_config(const MpTableConfig& c)
{
    if (c.cpus == 0 || c.cpus > mp::kMaxCpus)
        throw Error("MP table: " + std::to_string(c.cpus) + " CPUs, must be 1.." + std::to_string(mp::kMaxCpus));
    if (!c.pci_routes.empty() && !c.pci_bus) throw Error("MP table: PCI interrupt routes given without a PCI bus");
    for (const PciIntxRoute& r : c.pci_routes) {
        if (r.device >= 32 || r.pin >= 4)
            throw Error("MP table: PCI route for device " + std::to_string(r.device) + " pin " +
                        std::to_string(r.pin) + ": device must be 0..31 and pin 0..3 (INTA..INTD)");
        if (!gsi::ioapic_pin(r.gsi))
            throw Error("MP table: PCI device " + std::to_string(r.device) + " routed to GSI " +
                        std::to_string(r.gsi) + ", which has no IOAPIC pin");
    }
}

}  // namespace

void write_mptable(GuestMemory& mem, const MpTableConfig& c)
{
    check_config(c);
    const uint8_t ioapic_id = static_cast<uint8_t>(c.cpus);
    const uint8_t isa_bus = mp_isa_bus_id(c);

    // Base table entries, in ascending type order (4.3).
    EntryWriter e;
    for (unsigned i = 0; i < c.cpus; ++i) {
        const uint8_t flags = mp::kCpuEnabled | (i == 0 ? mp::kCpuBootstrap : 0);
        e.add(mp::ProcessorEntry{mp::kEntryProcessor, static_cast<uint8_t>(i), mp::kLapicVersion, flags,
                                 c.cpu_signature, c.cpu_features, {0, 0}});
    }
    auto bus = [](uint8_t id, const char (&name)[6]) {
        mp::BusEntry b{mp::kEntryBus, id, {}};
        std::memcpy(b.bus_type, name, sizeof b.bus_type);
        return b;
    };
    if (c.pci_bus) e.add(bus(mp::kPciBusId, mp::kBusPci));
    e.add(bus(isa_bus, mp::kBusIsa));
    e.add(mp::IoapicEntry{mp::kEntryIoapic, ioapic_id, c.ioapic_version, mp::kIoapicEnabled,
                          static_cast<uint32_t>(layout::kIoapicBase)});
    // ISA IRQs go to the IOAPIC pins of gsi_layout.h (IRQ 0 -> pin 2; IRQ 2,
    // the 8259 cascade, has none), edge/high as the ISA bus defines.
    for (uint32_t irq = 0; irq < gsi::kIsaIrqs; ++irq) {
        const std::optional<uint32_t> pin = gsi::ioapic_pin(irq);
        if (!pin) continue;
        e.add(mp::InterruptEntry{mp::kEntryIoInterrupt, mp::kIntInt, mp::kPolarityConforms | mp::kTriggerConforms,
                                 isa_bus, static_cast<uint8_t>(irq), ioapic_id, static_cast<uint8_t>(*pin)});
    }
    // PCI INTx: level triggered, active low (PCI 3.0 2.2.6).
    for (const PciIntxRoute& r : c.pci_routes)
        e.add(mp::InterruptEntry{mp::kEntryIoInterrupt, mp::kIntInt, mp::kPolarityActiveLow | mp::kTriggerLevel,
                                 mp::kPciBusId, mp::pci_source_irq(r.device, r.pin), ioapic_id,
                                 static_cast<uint8_t>(*gsi::ioapic_pin(r.gsi))});
    // Virtual wire: the 8259 through LINT0 (ExtINT), NMI on LINT1, every CPU.
    e.add(mp::InterruptEntry{mp::kEntryLocalInterrupt, mp::kIntExtInt, mp::kPolarityConforms | mp::kTriggerConforms,
                             isa_bus, 0, mp::kAllLocalApics, mp::kLint0});
    e.add(mp::InterruptEntry{mp::kEntryLocalInterrupt, mp::kIntNmi, mp::kPolarityConforms | mp::kTriggerConforms,
                             isa_bus, 0, mp::kAllLocalApics, mp::kLint1});

    // The configuration table follows the floating pointer.
    const uint64_t table_addr = layout::kMpTableAddr + sizeof(mp::FloatingPointer);
    const uint64_t base_length = sizeof(mp::ConfigHeader) + e.bytes().size();
    if (base_length > UINT16_MAX || table_addr + base_length > layout::kHighMemStart)
        throw Error("MP table for " + std::to_string(c.cpus) + " CPUs is " + std::to_string(base_length) +
                    " bytes, more than fits below " + hex(layout::kHighMemStart));

    mp::ConfigHeader h{};
    std::memcpy(h.signature, mp::kConfigSignature, sizeof h.signature);
    h.base_length = static_cast<uint16_t>(base_length);
    h.spec_rev = mp::kSpecRev14;
    std::memcpy(h.oem_id, mp::kOemId, sizeof h.oem_id);
    std::memcpy(h.product_id, mp::kProductId, sizeof h.product_id);
    h.entry_count = e.count();
    h.lapic_address = static_cast<uint32_t>(layout::kLapicBase);
    const auto* hp = reinterpret_cast<const uint8_t*>(&h);
    std::vector<uint8_t> table(hp, hp + sizeof h);
    table.insert(table.end(), e.bytes().begin(), e.bytes().end());
    table[offsetof(mp::ConfigHeader, checksum)] = checksum_byte(table.data(), table.size());

    mp::FloatingPointer fp{};
    std::memcpy(fp.signature, mp::kFloatingSignature, sizeof fp.signature);
    fp.config_table = static_cast<uint32_t>(table_addr);
    fp.length = sizeof(mp::FloatingPointer) / 16;
    fp.spec_rev = mp::kSpecRev14;
    fp.checksum = checksum_byte(reinterpret_cast<const uint8_t*>(&fp), sizeof fp);

    if (!mem.write_obj(layout::kMpTableAddr, fp) || !mem.write(table_addr, table.data(), table.size()))
        throw Error("guest RAM (" + std::to_string(mem.size()) + " bytes) does not cover the MP table at " +
                    hex(layout::kMpTableAddr));
}

}  // namespace kvmini
