// The local APIC of one x86 CPU, as a plain model for the user irqchip mode:
// no KVM calls, no threads, no clocks (time comes in as `now_ns`, in
// nanoseconds of the owner's clock).
//
// Reference: Intel SDM vol. 3A chapter 11 (numbering of the 2023+ editions;
// chapter 10 in older ones) "Advanced Programmable Interrupt Controller":
// 11.4.4 IA32_APIC_BASE, 11.4.7 local APIC state after reset / INIT /
// software disable, 11.4.8 version register, 11.5.1 LVT, 11.5.3 error
// handling (ESR), 11.5.4 the APIC timer (one-shot, periodic, divide
// configuration) and 11.5.4.1 TSC-deadline mode, 11.6.1 ICR, 11.6.2
// destinations (physical, logical flat/cluster, LDR/DFR), 11.6.2.4 lowest
// priority, 11.6.3 IPI delivery, 11.8.3 IRR/ISR/TMR and fixed interrupt
// acceptance, 11.8.3.1 PPR, 11.8.3.2 TPR/CR8, 11.8.5 EOI and EOI-broadcast
// suppression, 11.9 spurious interrupt, 11.12 x2APIC (MSR interface 0x800-
// 0x8ff, 11.12.9 ICR, 11.12.10 logical destination, 11.12.11 SELF IPI).
//
// Modelling choices:
//  * The timer counts at a 1 GHz nominal bus clock (one count per ns before
//    the divider), as KVM's in-kernel LAPIC and QEMU do, so a guest programs
//    the same counts in every irqchip mode.
//  * Delivery status (ICR bit 12) always reads 0: an IPI is handed out at
//    once (take_outputs()), with the level flag 1 and edge trigger (11.6.1,
//    Pentium 4 and later).
//  * INIT level de-assert IPIs are ignored (Pentium 4 and later, 11.6.1).
//  * SIPI is recorded whatever the state (the first of several pending:
//    a later one would find the CPU started); the owner honours it only in
//    the wait-for-SIPI state it keeps for the CPU.
//  * Fixed and lowest-priority messages to a software-disabled APIC are
//    dropped and counted (as KVM does); NMI, INIT, SIPI and ExtINT are still
//    taken (11.4.7.2).
//  * Illegal vectors (0-15) set the ESR (send or receive illegal vector) and
//    deliver nothing; the LVT error entry then raises its vector once the
//    error register is re-armed by a write (11.5.3).
//  * Version 0x14, six LVT entries (timer, thermal, PMC, LINT0, LINT1,
//    error; no CMCI), EOI-broadcast suppression supported (SVR bit 12).
//
// Thread safety: none of its own. Its owner (the user irqchip) serialises
// every call under one lock and drains take_outputs() after each call that
// may produce outputs (register writes, EOIs).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "irqchip/models/apic_bus.h"

namespace kvmini {

// What a register access or EOI produced, for the owner to route.
struct LapicOutputs {
    std::vector<ApicMessage> ipis;        // ICR / SELF IPI writes
    std::vector<uint8_t> level_eois;      // EOIs of TMR vectors to broadcast to the IOAPIC
    std::vector<uint8_t> eoi_vectors;     // every EOI'd vector (for acknowledgement notifiers)
};

struct LapicStats {
    uint64_t accepted = 0;            // fixed/lowest-priority vectors set in IRR
    uint64_t coalesced = 0;           // ... that were already pending in IRR
    uint64_t acknowledged = 0;        // IRR -> ISR (acknowledge())
    uint64_t spurious = 0;            // acknowledge() with nothing deliverable
    uint64_t eois = 0;                // EOI register writes
    uint64_t level_eois = 0;          // ... of which broadcast to the IOAPIC
    uint64_t ipis_sent = 0;           // ICR and SELF IPI writes that sent a message
    uint64_t nmis = 0, inits = 0, sipis = 0, extints = 0;  // messages taken by mode
    uint64_t timer_fires = 0;         // timer expiries (one-shot, periodic, TSC-deadline)
    uint64_t dropped_disabled = 0;    // fixed/lowest to a software- or hardware-disabled APIC
    uint64_t illegal_vectors = 0;     // ESR send/receive illegal vector
    uint64_t odd_accesses = 0;        // reserved/read-only registers, bad widths, x2APIC misuse
};

class Lapic {
public:
    // Register offsets in the xAPIC page (11.4.1 table 11-1); x2APIC MSR =
    // 0x800 + offset / 16.
    static constexpr uint32_t kRegId = 0x20;
    static constexpr uint32_t kRegVersion = 0x30;
    static constexpr uint32_t kRegTpr = 0x80;
    static constexpr uint32_t kRegApr = 0x90;
    static constexpr uint32_t kRegPpr = 0xa0;
    static constexpr uint32_t kRegEoi = 0xb0;
    static constexpr uint32_t kRegRrd = 0xc0;
    static constexpr uint32_t kRegLdr = 0xd0;
    static constexpr uint32_t kRegDfr = 0xe0;
    static constexpr uint32_t kRegSvr = 0xf0;
    static constexpr uint32_t kRegIsr = 0x100;  // 8 registers, 0x10 apart
    static constexpr uint32_t kRegTmr = 0x180;
    static constexpr uint32_t kRegIrr = 0x200;
    static constexpr uint32_t kRegEsr = 0x280;
    static constexpr uint32_t kRegLvtCmci = 0x2f0;
    static constexpr uint32_t kRegIcrLow = 0x300;
    static constexpr uint32_t kRegIcrHigh = 0x310;
    static constexpr uint32_t kRegLvtTimer = 0x320;
    static constexpr uint32_t kRegLvtThermal = 0x330;
    static constexpr uint32_t kRegLvtPmc = 0x340;
    static constexpr uint32_t kRegLvtLint0 = 0x350;
    static constexpr uint32_t kRegLvtLint1 = 0x360;
    static constexpr uint32_t kRegLvtError = 0x370;
    static constexpr uint32_t kRegTimerInitial = 0x380;
    static constexpr uint32_t kRegTimerCurrent = 0x390;
    static constexpr uint32_t kRegTimerDivide = 0x3e0;
    static constexpr uint32_t kRegSelfIpi = 0x3f0;  // x2APIC only

    // MSRs (11.4.4, 11.5.4.1, 11.12.1).
    static constexpr uint32_t kMsrApicBase = 0x1b;
    static constexpr uint32_t kMsrTscDeadline = 0x6e0;
    static constexpr uint32_t kMsrX2apicFirst = 0x800;
    static constexpr uint32_t kMsrX2apicLast = 0x8ff;

    // IA32_APIC_BASE bits (11.4.4).
    static constexpr uint64_t kBaseBsp = 1u << 8;
    static constexpr uint64_t kBaseX2apic = 1u << 10;
    static constexpr uint64_t kBaseEnable = 1u << 11;
    static constexpr uint64_t kDefaultBase = 0xfee0'0000;
    static constexpr uint64_t kPageSize = 0x1000;

    // ESR bits (11.5.3).
    static constexpr uint32_t kEsrSendIllegalVector = 1u << 5;
    static constexpr uint32_t kEsrReceiveIllegalVector = 1u << 6;
    static constexpr uint32_t kEsrIllegalRegister = 1u << 7;

    // LVT and SVR bits (11.5.1, 11.9).
    static constexpr uint32_t kLvtMasked = 1u << 16;
    static constexpr uint32_t kSvrEnable = 1u << 8;
    static constexpr uint32_t kSvrEoiBroadcastSuppression = 1u << 12;

    static constexpr uint32_t kVersion = 0x14 | (5u << 16) | (1u << 24);  // max LVT 5, EOI-broadcast suppression
    static constexpr uint64_t kBusHz = 1'000'000'000;  // timer input before the divider

    // APIC `id`; `bsp` sets IA32_APIC_BASE.BSP. Starts in the power-on state.
    Lapic(uint32_t id, bool bsp);

    // Power-on / INIT reset (11.4.7.1, 11.4.7.3): everything but the APIC ID
    // and IA32_APIC_BASE returns to its reset value; LVTs masked; SVR 0xff
    // (software-disabled); timer stopped; pending NMI and INIT dropped. A
    // pending SIPI stays: the owner takes INIT and SIPI lazily, so a SIPI
    // pending at the reset arrived after the INIT it carries out (accept()
    // of an INIT drops an older SIPI).
    void reset();

    uint32_t id() const { return id_; }

    // What a PC BIOS leaves in the APIC for the OS (MP spec 1.4, 3.6.2.2
    // "virtual wire mode"): LINT0 ExtINT and LINT1 NMI, unmasked, so that the
    // 8259A's INTR and the NMI reach the CPU. The owner plays the BIOS.
    void set_virtual_wire();

    // IA32_APIC_BASE as the CPU holds it. set_apic_base() follows the guest's
    // writes (enable/disable, x2APIC, relocation). Disabling (EN=0) resets the
    // APIC state as for INIT (11.4.3).
    uint64_t apic_base() const { return apic_base_; }
    void set_apic_base(uint64_t value);
    uint64_t mmio_base() const { return apic_base_ & ~(kPageSize - 1) & ((1ull << 52) - 1); }
    bool hardware_enabled() const { return apic_base_ & kBaseEnable; }
    bool x2apic_mode() const { return hardware_enabled() && (apic_base_ & kBaseX2apic); }
    bool software_enabled() const { return svr_ & kSvrEnable; }

    // xAPIC MMIO: `offset` within the 4 KiB page, 32-bit accesses at 16-byte
    // aligned registers (others count as odd: reads give 0, writes are
    // dropped). In x2APIC mode MMIO is not decoded (reads 0, writes dropped).
    uint32_t read_mmio(uint32_t offset, uint64_t now_ns);
    void write_mmio(uint32_t offset, uint32_t value, uint64_t now_ns);

    // x2APIC MSRs 0x800-0x8ff. Return false where the CPU raises #GP: not in
    // x2APIC mode, a reserved or write-only/read-only register, a reserved
    // bit set where the SDM requires #GP (11.12.1.2).
    bool read_msr(uint32_t msr, uint64_t& value, uint64_t now_ns);
    bool write_msr(uint32_t msr, uint64_t value, uint64_t now_ns);

    // Destination matching for a message with no shorthand (11.6.2): physical
    // (ID, or the broadcast ID 0xff / 0xffffffff in x2APIC mode) or logical
    // (flat or cluster model by DFR in xAPIC, the x2APIC cluster/bitmap LDR).
    // A hardware-disabled APIC matches nothing.
    bool matches(uint32_t destination, bool logical) const;
    // Arbitration priority for lowest-priority delivery (11.6.2.4): the TPR
    // when its class is at least the highest IRR class and above the highest
    // ISR class, else the highest of the three classes.
    uint8_t arbitration_priority() const;

    // A message the APIC bus routed here.
    void accept(const ApicMessage& m);

    // LINT0/LINT1 input levels (pin 0 or 1), from the board (LINT0: the
    // 8259A's INTR; LINT1: NMI). Fixed and NMI modes act on the rising edge
    // (edge) or while high (level-fixed: IRR set while asserted); ExtINT is
    // not latched here: the owner asks lint0_accepts_extint() and takes the
    // vector from the 8259A. A masked LVT ignores the pin.
    void set_lint(unsigned pin, bool level);
    // LVT LINT0 is unmasked in ExtINT mode, or the APIC is hardware-disabled
    // (the 8259A's INTR then reaches the CPU directly).
    bool lint0_accepts_extint() const;
    // LVT LINT0 is unmasked in NMI mode (the PIT's NMI-watchdog wire).
    bool lint0_is_nmi() const;

    // The vector the CPU would take now: the highest IRR vector whose class
    // is above the PPR's (11.8.3.1), if any.
    std::optional<uint8_t> pending_vector() const;
    // A vector waits in IRR that only the TPR keeps back: its class is above
    // the in-service class but not above the TPR's (so lowering CR8 would
    // release it).
    bool vector_held_by_tpr() const;
    // The CPU's interrupt acknowledge: moves pending_vector() from IRR to ISR
    // and returns it; with nothing deliverable returns the spurious vector
    // (SVR 7:0) and changes nothing (11.9).
    uint8_t acknowledge();

    // Pending non-vectored events, taken once by the owner.
    bool nmi_pending() const { return nmi_pending_; }
    bool take_nmi();
    bool init_pending() const { return init_pending_; }
    bool take_init();
    std::optional<uint8_t> take_sipi();
    bool sipi_pending() const { return sipi_vector_.has_value(); }

    // TPR as CR8 sees it (11.8.6): CR8[3:0] = TPR[7:4].
    uint8_t cr8() const { return static_cast<uint8_t>(tpr_ >> 4); }
    void set_cr8(uint8_t value);
    uint8_t tpr() const { return static_cast<uint8_t>(tpr_); }
    uint8_t ppr() const;

    // Timer. next_timer_ns(): the owner's time of the next expiry, if armed.
    // advance_time(): runs every expiry due by `now_ns` (one IRR bit; a
    // periodic timer late by several periods sets it once and re-arms from
    // the last period boundary not in the future).
    std::optional<uint64_t> next_timer_ns() const;
    void advance_time(uint64_t now_ns);
    // TSC-deadline mode (11.5.4.1): the value as the guest wrote it, and when
    // it expires on the owner's clock (nullopt: disarmed; the owner converts
    // TSC to ns). A write outside TSC-deadline mode is ignored; reads return
    // 0 once the deadline passed or outside that mode.
    uint64_t tsc_deadline() const;
    void set_tsc_deadline(uint64_t tsc_value, std::optional<uint64_t> expires_ns);
    bool tsc_deadline_mode() const;

    // Messages and EOIs produced since the last call.
    LapicOutputs take_outputs();

    const LapicStats& stats() const { return stats_; }

private:
    uint32_t x2apic_ldr() const;
    // The bits of an x2APIC register a write may set (others #GP), where
    // the SDM lists reserved bits; nullopt: checked elsewhere.
    static std::optional<uint32_t> x2apic_writable_bits(uint32_t offset);
    uint32_t read_register(uint32_t offset, uint64_t now_ns, bool& ok);
    // `x2apic` changes what is writable (LDR read-only, DFR absent, ...).
    bool write_register(uint32_t offset, uint64_t value, uint64_t now_ns, bool x2apic);
    void write_icr(uint32_t low, uint32_t high);
    void write_lvt(unsigned index, uint32_t value, uint64_t now_ns);
    void eoi();
    void set_irr(uint8_t vector, bool level);
    void report_error(uint32_t esr_bit);
    void start_timer(uint64_t now_ns);
    uint32_t current_count(uint64_t now_ns) const;
    uint64_t timer_period_ns() const;
    static int highest_bit(const std::array<uint32_t, 8>& bits);
    static bool test_bit(const std::array<uint32_t, 8>& bits, uint8_t v) { return bits[v >> 5] & (1u << (v & 31)); }
    static void set_bit(std::array<uint32_t, 8>& bits, uint8_t v) { bits[v >> 5] |= 1u << (v & 31); }
    static void clear_bit(std::array<uint32_t, 8>& bits, uint8_t v) { bits[v >> 5] &= ~(1u << (v & 31)); }

    // LVT indexes into lvt_.
    enum LvtIndex : unsigned { kLvtTimer, kLvtThermal, kLvtPmc, kLvtLint0, kLvtLint1, kLvtError, kLvtCount };

    uint32_t id_;
    uint64_t apic_base_;
    uint32_t tpr_ = 0;
    uint32_t ldr_ = 0;
    uint32_t dfr_ = 0xffff'ffff;
    uint32_t svr_ = 0xff;
    std::array<uint32_t, 8> isr_{}, tmr_{}, irr_{};
    uint32_t esr_ = 0;          // as the guest reads it
    uint32_t esr_pending_ = 0;  // errors since the last ESR write
    uint32_t icr_low_ = 0, icr_high_ = 0;
    std::array<uint32_t, kLvtCount> lvt_{};
    std::array<bool, 2> lint_level_{};
    uint32_t timer_initial_ = 0;
    uint32_t timer_divide_ = 0;  // the divide configuration register as written
    std::optional<uint64_t> timer_start_ns_;   // one-shot/periodic: start of the current period
    std::optional<uint64_t> timer_expiry_ns_;  // armed expiry (any mode)
    uint64_t tsc_deadline_ = 0;
    bool nmi_pending_ = false;
    bool init_pending_ = false;
    std::optional<uint8_t> sipi_vector_;
    LapicOutputs outputs_;
    LapicStats stats_;
};

// The APIC bus's routing for a message (11.6.2, 11.6.2.4): the indexes into
// `apics` of the APICs that take it. Shorthands use `m.source_id` for "self";
// lowest priority picks one APIC (the lowest arbitration priority, ties to
// the lowest index at or after `rr_start`, so the owner can rotate focus).
std::vector<unsigned> route_apic_message(const std::vector<const Lapic*>& apics, const ApicMessage& m,
                                         unsigned rr_start = 0);

}  // namespace kvmini
