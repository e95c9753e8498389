// libFuzzer target: the local APIC model (irqchip/models/lapic.h) as a
// hostile guest drives it in user mode. The input is a stream of operations
// on two APICs (IDs 0 and 1): xAPIC register reads and writes anywhere in
// the page, x2APIC MSRs, IA32_APIC_BASE changes (disable, x2APIC, move),
// messages from the bus (every delivery mode, illegal vectors, logical and
// broadcast destinations), LINT levels, interrupt acknowledges, EOIs, time
// passing (with TSC-deadline writes), and the owner's routing of the IPIs
// each access produced. Checked after each step, from the SDM: an
// acknowledge returns the spurious vector or a vector >= 16 above the PPR's
// class; PPR is never below TPR's class; the timer's current count never
// exceeds its initial count; lowest priority picks at most one APIC; and the
// model never loops (the IPIs one access produces are bounded). ASan and
// UBSan do the rest.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "irqchip/models/lapic.h"

using namespace kvmini;

namespace {

struct Input {
    const uint8_t* p;
    size_t n;
    bool empty() const { return n == 0; }
    uint8_t u8()
    {
        if (!n) return 0;
        --n;
        return *p++;
    }
    uint32_t u32()
    {
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= uint32_t{u8()} << (8 * i);
        return v;
    }
    uint64_t u64() { return u32() | (uint64_t{u32()} << 32); }
};

void check(bool ok)
{
    if (!ok) std::abort();
}

ApicMessage message(Input& in, uint32_t source)
{
    ApicMessage m;
    m.vector = in.u8();
    m.mode = static_cast<ApicDeliveryMode>(in.u8() & 7);
    const uint8_t flags = in.u8();
    m.logical = flags & 1;
    m.level = flags & 2;
    m.assert = flags & 4;
    m.shorthand = static_cast<ApicShorthand>((flags >> 3) & 3);
    m.destination = (flags & 0x20) ? 0xffu : (flags & 0x40) ? in.u32() : in.u8();
    m.source_id = source;
    return m;
}

// The owner's part after an access: route what the APIC sent, as the user
// irqchip does. One access sends at most one IPI.
void route_outputs(std::vector<Lapic>& apics, unsigned from, unsigned& rr)
{
    const LapicOutputs out = apics[from].take_outputs();
    check(out.ipis.size() <= 1);
    std::vector<const Lapic*> bus;
    for (const Lapic& a : apics) bus.push_back(&a);
    for (const ApicMessage& m : out.ipis) {
        const auto targets = route_apic_message(bus, m, rr++);
        if (m.mode == ApicDeliveryMode::kLowestPriority) check(targets.size() <= 1);
        for (unsigned t : targets) {
            check(t < apics.size());
            apics[t].accept(m);
        }
    }
}

void check_invariants(Lapic& a, uint64_t now)
{
    check(a.ppr() >= (a.tpr() & 0xf0));
    if (auto v = a.pending_vector()) check(*v >= 16 && (*v & 0xf0) > (a.ppr() & 0xf0));
    if (a.hardware_enabled() && !a.x2apic_mode())
        check(a.read_mmio(Lapic::kRegTimerCurrent, now) <= a.read_mmio(Lapic::kRegTimerInitial, now));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    Input in{data, size};
    std::vector<Lapic> apics;
    apics.emplace_back(0, true);
    apics.emplace_back(1, false);
    uint64_t now = 1'000'000;
    unsigned rr = 0;
    for (unsigned steps = 0; !in.empty() && steps < 4096; ++steps) {
        const uint8_t op = in.u8();
        const unsigned i = op >> 7;  // which APIC
        Lapic& a = apics[i];
        switch (op % 12) {
        case 0: a.write_mmio(static_cast<uint32_t>(in.u8()) << 4 | (in.u8() & 0xf), in.u32(), now); break;
        case 1: (void)a.read_mmio(static_cast<uint32_t>(in.u8()) << 4, now); break;
        case 2: (void)a.write_msr(Lapic::kMsrX2apicFirst + in.u8(), in.u64(), now); break;
        case 3: {
            uint64_t v;
            (void)a.read_msr(Lapic::kMsrX2apicFirst + in.u8(), v, now);
            break;
        }
        case 4: {
            const ApicMessage m = message(in, apics[i ^ 1].id());
            std::vector<const Lapic*> bus{&apics[0], &apics[1]};
            for (unsigned t : route_apic_message(bus, m, rr++)) apics[t].accept(m);
            break;
        }
        case 5: a.set_lint(in.u8() & 1, in.u8() & 1); break;
        case 6: {
            const uint8_t ppr_class = a.ppr() & 0xf0;
            const bool had = a.pending_vector().has_value();
            const uint8_t v = a.acknowledge();
            if (had) check(v >= 16 && (v & 0xf0) > ppr_class);
            break;
        }
        case 7: a.write_mmio(Lapic::kRegEoi, 0, now); break;
        case 8: now += in.u32() & 0xffffff; break;
        case 9: {
            static constexpr uint64_t kBases[] = {
                Lapic::kDefaultBase | Lapic::kBaseEnable,
                Lapic::kDefaultBase | Lapic::kBaseEnable | Lapic::kBaseX2apic,
                Lapic::kDefaultBase,
                0xfed0'0000 | Lapic::kBaseEnable,
            };
            a.set_apic_base(kBases[in.u8() % 4] | (a.apic_base() & Lapic::kBaseBsp));
            break;
        }
        case 10: {
            const uint64_t tsc = in.u64();
            a.set_tsc_deadline(tsc, (in.u8() & 1) ? std::optional<uint64_t>(now + (tsc & 0xffff)) : std::nullopt);
            break;
        }
        case 11: a.set_cr8(in.u8()); break;
        }
        for (Lapic& x : apics) x.advance_time(now);
        route_outputs(apics, i, rr);
        (void)apics[i ^ 1].take_outputs();
        (void)a.take_nmi();
        (void)a.take_init();
        (void)a.take_sipi();
        for (Lapic& x : apics) check_invariants(x, now);
    }
    return 0;
}
