#include "irqchip/models/lapic.h"

#include <algorithm>
#include <utility>

namespace kvmini {

namespace {
// Bits of the ICR and the LVT entries (11.5.1 figure 11-8, 11.6.1 figure 11-12).
constexpr uint32_t kVectorMask = 0xff;
constexpr uint32_t kDestModeLogical = 1u << 11;
constexpr uint32_t kDeliveryStatus = 1u << 12;
constexpr uint32_t kLevelAssert = 1u << 14;
constexpr uint32_t kTriggerLevel = 1u << 15;
constexpr uint32_t kShorthandShift = 18;
constexpr uint32_t kRemoteIrr = 1u << 14;
constexpr uint32_t kTimerModeShift = 17;
constexpr uint32_t kTimerModeMask = 0x3u << kTimerModeShift;
constexpr uint32_t kTimerOneShot = 0, kTimerPeriodic = 1, kTimerTscDeadline = 2;

// What a guest may write in each register (the rest reads 0).
constexpr uint32_t kTprMask = 0xff;
constexpr uint32_t kLdrMask = 0xff00'0000;
constexpr uint32_t kDfrModelMask = 0xf000'0000;
constexpr uint32_t kSvrMask = 0xff | Lapic::kSvrEnable | (1u << 9) | Lapic::kSvrEoiBroadcastSuppression;
constexpr uint32_t kIcrLowMask = 0xff | kApicDeliveryModeMask | kDestModeLogical | kLevelAssert | kTriggerLevel | (3u << 18);
constexpr uint32_t kDivideMask = 0xb;
// Writable bits of each LVT entry, by index (timer, thermal, PMC, LINT0, LINT1, error).
constexpr std::array<uint32_t, 6> kLvtWritable = {
    0xff | (1u << 16) | kTimerModeMask,
    0xff | kApicDeliveryModeMask | (1u << 16),
    0xff | kApicDeliveryModeMask | (1u << 16),
    0xff | kApicDeliveryModeMask | (1u << 13) | kTriggerLevel | (1u << 16),
    0xff | kApicDeliveryModeMask | (1u << 13) | kTriggerLevel | (1u << 16),
    0xff | (1u << 16),
};

constexpr uint32_t lvt_mode(uint32_t lvt) { return (lvt & kApicDeliveryModeMask) >> kApicDeliveryModeShift; }
constexpr uint8_t priority_class(int vector) { return static_cast<uint8_t>(vector & 0xf0); }
}  // namespace

Lapic::Lapic(uint32_t id, bool bsp) : id_(id), apic_base_(kDefaultBase | kBaseEnable | (bsp ? kBaseBsp : 0))
{
    reset();
}

void Lapic::reset()
{
    tpr_ = 0;
    ldr_ = 0;
    dfr_ = 0xffff'ffff;
    svr_ = 0xff;
    isr_ = {};
    tmr_ = {};
    irr_ = {};
    esr_ = esr_pending_ = 0;
    icr_low_ = icr_high_ = 0;
    lvt_.fill(kLvtMasked);
    if (x2apic_mode()) ldr_ = x2apic_ldr();  // read-only and derived from the ID (11.12.10.2)
    timer_initial_ = 0;
    timer_divide_ = 0;
    timer_start_ns_.reset();
    timer_expiry_ns_.reset();
    tsc_deadline_ = 0;
    nmi_pending_ = init_pending_ = false;
    // A pending SIPI is kept: it came after the INIT this reset carries out
    // (accept() drops a SIPI older than a new INIT), and the AP needs it.
}

void Lapic::set_apic_base(uint64_t value)
{
    const bool was_enabled = hardware_enabled();
    const bool was_x2apic = x2apic_mode();
    apic_base_ = (apic_base_ & kBaseBsp) | (value & ~kBaseBsp);
    if (was_enabled && !hardware_enabled()) {
        // 11.4.3: disabling the APIC through IA32_APIC_BASE is like a reset.
        reset();
        apic_base_ &= ~kBaseX2apic;
    }
    if (!was_x2apic && x2apic_mode()) ldr_ = x2apic_ldr();
}

uint32_t Lapic::x2apic_ldr() const
{
    // 11.12.10.2: cluster ID (ID[19:4]) in bits 31:16, 1 << ID[3:0] in 15:0.
    return ((id_ >> 4) << 16) | (1u << (id_ & 0xf));
}

void Lapic::set_virtual_wire()
{
    lvt_[kLvtLint0] = static_cast<uint32_t>(ApicDeliveryMode::kExtInt) << kApicDeliveryModeShift;
    lvt_[kLvtLint1] = static_cast<uint32_t>(ApicDeliveryMode::kNmi) << kApicDeliveryModeShift;
}

int Lapic::highest_bit(const std::array<uint32_t, 8>& bits)
{
    for (int i = 7; i >= 0; --i)
        if (bits[i]) return i * 32 + 31 - __builtin_clz(bits[i]);
    return -1;
}

uint8_t Lapic::ppr() const
{
    const int isrv = highest_bit(isr_);
    const uint8_t isr_class = isrv < 0 ? 0 : priority_class(isrv);
    return (tpr_ & 0xf0) >= isr_class ? static_cast<uint8_t>(tpr_) : isr_class;
}

uint8_t Lapic::arbitration_priority() const
{
    // 11.6.2.4: APR = TPR when its class is at least the highest pending
    // (IRR) class and above the in-service one; otherwise the highest of
    // the three classes, with bits 3:0 clear.
    const int irrv = highest_bit(irr_);
    const int isrv = highest_bit(isr_);
    const uint8_t tpr_class = priority_class(static_cast<int>(tpr_));
    const uint8_t irr_class = irrv < 0 ? 0 : priority_class(irrv);
    const uint8_t isr_class = isrv < 0 ? 0 : priority_class(isrv);
    if (tpr_class >= irr_class && (isrv < 0 || tpr_class > isr_class)) return static_cast<uint8_t>(tpr_);
    return std::max({tpr_class, irr_class, isr_class});
}

void Lapic::set_cr8(uint8_t value) { tpr_ = static_cast<uint32_t>(value & 0xf) << 4; }

std::optional<uint8_t> Lapic::pending_vector() const
{
    const int irrv = highest_bit(irr_);
    if (irrv < 0 || priority_class(irrv) <= (ppr() & 0xf0)) return std::nullopt;
    return static_cast<uint8_t>(irrv);
}

bool Lapic::vector_held_by_tpr() const
{
    const int irrv = highest_bit(irr_);
    if (irrv < 0) return false;
    const int isrv = highest_bit(isr_);
    const uint8_t cls = priority_class(irrv);
    return (isrv < 0 || cls > priority_class(isrv)) && cls <= (tpr_ & 0xf0);
}

uint8_t Lapic::acknowledge()
{
    const auto v = pending_vector();
    if (!v) {
        ++stats_.spurious;
        return static_cast<uint8_t>(svr_ & 0xff);
    }
    clear_bit(irr_, *v);
    set_bit(isr_, *v);
    ++stats_.acknowledged;
    return *v;
}

void Lapic::report_error(uint32_t esr_bit)
{
    ++stats_.illegal_vectors;
    const bool first = (esr_pending_ & esr_bit) == 0;
    esr_pending_ |= esr_bit;
    // 11.5.3: an error raises the LVT error interrupt.
    const uint32_t lvt = lvt_[kLvtError];
    if (first && !(lvt & kLvtMasked) && (lvt & kVectorMask) >= 16 && software_enabled())
        set_irr(static_cast<uint8_t>(lvt & kVectorMask), false);
}

void Lapic::set_irr(uint8_t vector, bool level)
{
    if (vector < 16) {
        report_error(kEsrReceiveIllegalVector);
        return;
    }
    if (test_bit(irr_, vector)) ++stats_.coalesced;
    set_bit(irr_, vector);
    if (level)
        set_bit(tmr_, vector);
    else
        clear_bit(tmr_, vector);
    ++stats_.accepted;
}

void Lapic::accept(const ApicMessage& m)
{
    switch (m.mode) {
    case ApicDeliveryMode::kFixed:
    case ApicDeliveryMode::kLowestPriority:
        if (!hardware_enabled() || !software_enabled()) {
            ++stats_.dropped_disabled;
            return;
        }
        set_irr(m.vector, m.level);
        return;
    case ApicDeliveryMode::kNmi:
        ++stats_.nmis;
        nmi_pending_ = true;
        return;
    case ApicDeliveryMode::kInit:
        if (m.level && !m.assert) return;  // INIT level de-assert: ignored
        ++stats_.inits;
        init_pending_ = true;
        sipi_vector_.reset();  // a SIPI before this INIT is void
        return;
    case ApicDeliveryMode::kStartup:
        ++stats_.sipis;
        // The first SIPI starts the CPU; one that follows it finds the CPU
        // running and is ignored, even if the owner has not looked yet.
        if (!sipi_vector_) sipi_vector_ = m.vector;
        return;
    case ApicDeliveryMode::kExtInt:
        // The vector comes from the 8259A when the owner injects.
        ++stats_.extints;
        return;
    case ApicDeliveryMode::kSmi:
    default:
        ++stats_.odd_accesses;
        return;
    }
}

bool Lapic::take_nmi() { return std::exchange(nmi_pending_, false); }
bool Lapic::take_init() { return std::exchange(init_pending_, false); }
std::optional<uint8_t> Lapic::take_sipi() { return std::exchange(sipi_vector_, std::nullopt); }

bool Lapic::matches(uint32_t destination, bool logical) const
{
    if (!hardware_enabled()) return false;
    if (x2apic_mode()) {
        if (destination == 0xffff'ffff) return true;
        if (!logical) return destination == id_;
        // 11.12.10.2: cluster in bits 31:16, member bitmap in 15:0.
        return (destination >> 16) == (ldr_ >> 16) && (destination & ldr_ & 0xffff) != 0;
    }
    destination &= 0xff;
    if (!logical) return destination == 0xff || destination == (id_ & 0xff);
    const uint8_t ldr = static_cast<uint8_t>(ldr_ >> 24);
    if ((dfr_ & kDfrModelMask) == kDfrModelMask) return (ldr & destination) != 0;  // flat
    // Cluster: 7:4 cluster (0xf: all), 3:0 members.
    const uint8_t cluster = destination >> 4;
    return (cluster == 0xf || cluster == (ldr >> 4)) && (destination & ldr & 0xf) != 0;
}

void Lapic::set_lint(unsigned pin, bool level)
{
    if (pin > 1) return;
    const bool rising = level && !lint_level_[pin];
    lint_level_[pin] = level;
    const uint32_t lvt = lvt_[pin == 0 ? kLvtLint0 : kLvtLint1];
    if (lvt & kLvtMasked) return;
    switch (lvt_mode(lvt)) {
    case static_cast<uint32_t>(ApicDeliveryMode::kFixed):
        if (rising || (level && (lvt & kTriggerLevel))) set_irr(static_cast<uint8_t>(lvt & kVectorMask), lvt & kTriggerLevel);
        break;
    case static_cast<uint32_t>(ApicDeliveryMode::kNmi):
        if (rising) {
            ++stats_.nmis;
            nmi_pending_ = true;
        }
        break;
    default: break;  // ExtINT: the owner asks lint0_accepts_extint()
    }
}

bool Lapic::lint0_accepts_extint() const
{
    if (!hardware_enabled()) return true;
    const uint32_t lvt = lvt_[kLvtLint0];
    return !(lvt & kLvtMasked) && lvt_mode(lvt) == static_cast<uint32_t>(ApicDeliveryMode::kExtInt);
}

bool Lapic::lint0_is_nmi() const
{
    const uint32_t lvt = lvt_[kLvtLint0];
    return hardware_enabled() && !(lvt & kLvtMasked) && lvt_mode(lvt) == static_cast<uint32_t>(ApicDeliveryMode::kNmi);
}

void Lapic::eoi()
{
    ++stats_.eois;
    const int v = highest_bit(isr_);
    if (v < 0) return;
    clear_bit(isr_, static_cast<uint8_t>(v));
    outputs_.eoi_vectors.push_back(static_cast<uint8_t>(v));
    if (test_bit(tmr_, static_cast<uint8_t>(v))) {
        clear_bit(tmr_, static_cast<uint8_t>(v));
        if (!(svr_ & kSvrEoiBroadcastSuppression)) {
            ++stats_.level_eois;
            outputs_.level_eois.push_back(static_cast<uint8_t>(v));
        }
    }
}

// --- timer (11.5.4) ---

uint64_t Lapic::timer_period_ns() const
{
    // Divide configuration bits 3,1:0: 000 by 2 ... 110 by 128, 111 by 1.
    const uint32_t code = ((timer_divide_ >> 1) & 4) | (timer_divide_ & 3);
    const uint64_t divide = code == 7 ? 1 : (2ull << code);
    return static_cast<uint64_t>(timer_initial_) * divide * (1'000'000'000 / kBusHz);
}

bool Lapic::tsc_deadline_mode() const
{
    return ((lvt_[kLvtTimer] & kTimerModeMask) >> kTimerModeShift) == kTimerTscDeadline;
}

void Lapic::start_timer(uint64_t now_ns)
{
    timer_start_ns_.reset();
    timer_expiry_ns_.reset();
    if (tsc_deadline_mode() || timer_initial_ == 0) return;
    timer_start_ns_ = now_ns;
    timer_expiry_ns_ = now_ns + timer_period_ns();
}

uint32_t Lapic::current_count(uint64_t now_ns) const
{
    if (!timer_start_ns_ || !timer_expiry_ns_ || tsc_deadline_mode()) return 0;
    const uint64_t period = timer_period_ns();
    if (period == 0) return 0;
    uint64_t left;
    if (now_ns < *timer_expiry_ns_) {
        left = *timer_expiry_ns_ - now_ns;
    } else if (((lvt_[kLvtTimer] & kTimerModeMask) >> kTimerModeShift) == kTimerPeriodic) {
        // 11.5.4: a periodic count reloads by itself at 0, whether or not the
        // owner has run advance_time() for that expiry yet.
        left = period - (now_ns - *timer_expiry_ns_) % period;
    } else {
        return 0;  // one-shot: stays 0 once it reached 0
    }
    // Counts left = ns left / (ns per count); the product needs 128 bits.
    return static_cast<uint32_t>(static_cast<unsigned __int128>(left) * timer_initial_ / period);
}

std::optional<uint64_t> Lapic::next_timer_ns() const { return timer_expiry_ns_; }

void Lapic::advance_time(uint64_t now_ns)
{
    if (!timer_expiry_ns_ || now_ns < *timer_expiry_ns_) return;
    ++stats_.timer_fires;
    const uint32_t lvt = lvt_[kLvtTimer];
    if (!(lvt & kLvtMasked)) set_irr(static_cast<uint8_t>(lvt & kVectorMask), false);
    const uint32_t mode = (lvt & kTimerModeMask) >> kTimerModeShift;
    if (mode == kTimerPeriodic && timer_period_ns() > 0) {
        // Coalesce periods already past: re-arm at the first boundary after now.
        const uint64_t period = timer_period_ns();
        const uint64_t missed = (now_ns - *timer_expiry_ns_) / period;
        timer_start_ns_ = *timer_expiry_ns_ + missed * period;
        timer_expiry_ns_ = *timer_start_ns_ + period;
        return;
    }
    if (mode == kTimerTscDeadline) tsc_deadline_ = 0;
    timer_expiry_ns_.reset();  // one-shot: the current count stays 0
}

uint64_t Lapic::tsc_deadline() const { return tsc_deadline_mode() ? tsc_deadline_ : 0; }

void Lapic::set_tsc_deadline(uint64_t tsc_value, std::optional<uint64_t> expires_ns)
{
    if (!tsc_deadline_mode()) return;
    tsc_deadline_ = tsc_value;
    timer_expiry_ns_ = tsc_value ? expires_ns : std::nullopt;
}

// --- registers ---

uint32_t Lapic::read_register(uint32_t offset, uint64_t now_ns, bool& ok)
{
    ok = true;
    if (offset >= kRegIsr && offset < kRegIsr + 0x80) return isr_[(offset - kRegIsr) >> 4];
    if (offset >= kRegTmr && offset < kRegTmr + 0x80) return tmr_[(offset - kRegTmr) >> 4];
    if (offset >= kRegIrr && offset < kRegIrr + 0x80) return irr_[(offset - kRegIrr) >> 4];
    switch (offset) {
    case kRegId: return x2apic_mode() ? id_ : (id_ << 24);
    case kRegVersion: return kVersion;
    case kRegTpr: return tpr_;
    case kRegApr: return arbitration_priority();
    case kRegPpr: return ppr();
    case kRegLdr: return ldr_;
    case kRegDfr:
        if (x2apic_mode()) break;
        return dfr_;
    case kRegSvr: return svr_;
    case kRegEsr: return esr_;
    case kRegIcrLow: return icr_low_ & ~kDeliveryStatus;
    case kRegIcrHigh: return icr_high_;
    case kRegLvtTimer: return lvt_[kLvtTimer];
    case kRegLvtThermal: return lvt_[kLvtThermal];
    case kRegLvtPmc: return lvt_[kLvtPmc];
    case kRegLvtLint0: return lvt_[kLvtLint0] | (lint_level_[0] && (lvt_[kLvtLint0] & kTriggerLevel) ? kRemoteIrr : 0);
    case kRegLvtLint1: return lvt_[kLvtLint1];
    case kRegLvtError: return lvt_[kLvtError];
    case kRegTimerInitial: return timer_initial_;
    case kRegTimerCurrent: return current_count(now_ns);
    case kRegTimerDivide: return timer_divide_;
    default: break;
    }
    ok = false;
    return 0;
}

void Lapic::write_lvt(unsigned index, uint32_t value, uint64_t now_ns)
{
    const bool was_deadline = tsc_deadline_mode();
    uint32_t v = value & kLvtWritable[index];
    if (!software_enabled()) v |= kLvtMasked;  // 11.4.7.2: masks cannot be cleared while disabled
    lvt_[index] = v;
    if (index == kLvtTimer && was_deadline != tsc_deadline_mode()) {
        // 11.5.4.1: switching between TSC-deadline and the count modes disarms the timer.
        tsc_deadline_ = 0;
        timer_initial_ = 0;
        start_timer(now_ns);
    }
}

bool Lapic::write_register(uint32_t offset, uint64_t value64, uint64_t now_ns, bool x2apic)
{
    const auto value = static_cast<uint32_t>(value64);
    switch (offset) {
    case kRegId:
        if (x2apic) return false;  // read-only in x2APIC mode
        // xAPIC ID writes are accepted by some CPUs; kvmini keeps IDs fixed
        // (the MP table names them), and counts the write.
        ++stats_.odd_accesses;
        return true;
    case kRegTpr: tpr_ = value & kTprMask; return true;
    case kRegEoi:
        if (x2apic && value64 != 0) return false;
        eoi();
        return true;
    case kRegLdr:
        if (x2apic) return false;
        ldr_ = value & kLdrMask;
        return true;
    case kRegDfr:
        if (x2apic) return false;
        dfr_ = (value & kDfrModelMask) | 0x0fff'ffff;
        return true;
    case kRegSvr: {
        svr_ = value & kSvrMask;
        if (!software_enabled())
            for (auto& lvt : lvt_) lvt |= kLvtMasked;  // 11.4.7.2
        return true;
    }
    case kRegEsr:
        if (x2apic && value64 != 0) return false;
        // 11.5.3: a write latches the errors found since the last write.
        esr_ = esr_pending_;
        esr_pending_ = 0;
        return true;
    case kRegIcrLow:
        if (x2apic) {
            write_icr(value, static_cast<uint32_t>(value64 >> 32));
            return true;
        }
        write_icr(value, icr_high_);
        return true;
    case kRegIcrHigh:
        if (x2apic) return false;  // ICR is one 64-bit register in x2APIC mode
        icr_high_ = value & 0xff00'0000;
        return true;
    case kRegLvtTimer: write_lvt(kLvtTimer, value, now_ns); return true;
    case kRegLvtThermal: write_lvt(kLvtThermal, value, now_ns); return true;
    case kRegLvtPmc: write_lvt(kLvtPmc, value, now_ns); return true;
    case kRegLvtLint0: write_lvt(kLvtLint0, value, now_ns); return true;
    case kRegLvtLint1: write_lvt(kLvtLint1, value, now_ns); return true;
    case kRegLvtError: write_lvt(kLvtError, value, now_ns); return true;
    case kRegTimerInitial:
        if (tsc_deadline_mode()) return true;  // 11.5.4.1: ignored in TSC-deadline mode
        timer_initial_ = value;
        start_timer(now_ns);
        return true;
    case kRegTimerDivide: {
        // The count goes on from where it is, at the new rate.
        const bool running = timer_start_ns_ && timer_expiry_ns_ && !tsc_deadline_mode();
        const uint32_t left = running ? current_count(now_ns) : 0;
        timer_divide_ = value & kDivideMask;
        if (running && timer_initial_ != 0) {
            const uint64_t ns_per_count = timer_period_ns() / timer_initial_;
            timer_start_ns_ = now_ns - static_cast<uint64_t>(timer_initial_ - left) * ns_per_count;
            timer_expiry_ns_ = now_ns + static_cast<uint64_t>(left) * ns_per_count;
        }
        return true;
    }
    case kRegSelfIpi:
        if (!x2apic) break;
        {
            ApicMessage m;
            m.vector = static_cast<uint8_t>(value & kVectorMask);
            m.shorthand = ApicShorthand::kSelf;
            m.source_id = id_;
            if (m.vector < 16) {
                report_error(kEsrSendIllegalVector);
                return true;
            }
            ++stats_.ipis_sent;
            set_irr(m.vector, false);
        }
        return true;
    default: break;
    }
    // Read-only or reserved.
    return false;
}

void Lapic::write_icr(uint32_t low, uint32_t high)
{
    icr_low_ = low & kIcrLowMask;
    icr_high_ = high;
    ApicMessage m;
    m.vector = static_cast<uint8_t>(low & kVectorMask);
    m.mode = static_cast<ApicDeliveryMode>((low & kApicDeliveryModeMask) >> kApicDeliveryModeShift);
    m.logical = low & kDestModeLogical;
    m.level = low & kTriggerLevel;
    m.assert = low & kLevelAssert;
    m.shorthand = static_cast<ApicShorthand>((low >> kShorthandShift) & 3);
    m.destination = x2apic_mode() ? high : (high >> 24);
    m.source_id = id_;
    switch (m.mode) {
    case ApicDeliveryMode::kFixed:
    case ApicDeliveryMode::kLowestPriority:
        if (m.vector < 16) {
            report_error(kEsrSendIllegalVector);
            return;
        }
        break;
    case ApicDeliveryMode::kInit:
        if (m.level && !m.assert) return;  // INIT level de-assert: no message on P4 and later
        break;
    case ApicDeliveryMode::kNmi:
    case ApicDeliveryMode::kStartup:
    case ApicDeliveryMode::kSmi: break;
    default:
        ++stats_.odd_accesses;  // reserved or ExtINT: not sent by an ICR
        return;
    }
    // 11.6.1, Pentium 4 and later: the level flag is always issued as 1
    // and the trigger mode as edge.
    m.assert = true;
    m.level = false;
    ++stats_.ipis_sent;
    outputs_.ipis.push_back(m);
}

uint32_t Lapic::read_mmio(uint32_t offset, uint64_t now_ns)
{
    if (x2apic_mode() || !hardware_enabled() || (offset & 0xf) || offset >= kPageSize) {
        ++stats_.odd_accesses;
        return 0;
    }
    bool ok;
    const uint32_t v = read_register(offset, now_ns, ok);
    if (!ok) ++stats_.odd_accesses;
    return v;
}

void Lapic::write_mmio(uint32_t offset, uint32_t value, uint64_t now_ns)
{
    if (x2apic_mode() || !hardware_enabled() || (offset & 0xf) || offset >= kPageSize) {
        ++stats_.odd_accesses;
        return;
    }
    // Writes to read-only or reserved registers are ignored (no ESR bit on
    // P6 and later), and counted.
    if (!write_register(offset, value, now_ns, false)) ++stats_.odd_accesses;
}

bool Lapic::read_msr(uint32_t msr, uint64_t& value, uint64_t now_ns)
{
    if (!x2apic_mode() || msr < kMsrX2apicFirst || msr > kMsrX2apicLast) return false;
    const uint32_t offset = (msr - kMsrX2apicFirst) << 4;
    if (offset == kRegIcrLow) {
        value = (static_cast<uint64_t>(icr_high_) << 32) | (icr_low_ & ~kDeliveryStatus);
        return true;
    }
    if (offset == kRegIcrHigh || offset == kRegDfr || offset == kRegEoi || offset == kRegSelfIpi) return false;
    bool ok;
    value = read_register(offset, now_ns, ok);
    if (!ok) ++stats_.odd_accesses;
    return ok;
}

bool Lapic::write_msr(uint32_t msr, uint64_t value, uint64_t now_ns)
{
    if (!x2apic_mode() || msr < kMsrX2apicFirst || msr > kMsrX2apicLast) return false;
    const uint32_t offset = (msr - kMsrX2apicFirst) << 4;
    // 11.12.1.2/3: reserved bits (63:32 of a 32-bit register, and the
    // reserved bits of the registers below) raise #GP.
    if (offset != kRegIcrLow && (value >> 32) != 0) return false;
    if (const auto writable = x2apic_writable_bits(offset); writable && (value & ~uint64_t{*writable}) != 0)
        return false;
    const bool ok = write_register(offset, value, now_ns, true);
    if (!ok) ++stats_.odd_accesses;
    return ok;
}

std::optional<uint32_t> Lapic::x2apic_writable_bits(uint32_t offset)
{
    switch (offset) {
    case kRegTpr: return kTprMask;
    case kRegSvr: return kSvrMask;
    case kRegSelfIpi: return kVectorMask;
    case kRegTimerDivide: return kDivideMask;
    case kRegLvtTimer: return kLvtWritable[kLvtTimer];
    case kRegLvtThermal: return kLvtWritable[kLvtThermal];
    case kRegLvtPmc: return kLvtWritable[kLvtPmc];
    case kRegLvtLint0: return kLvtWritable[kLvtLint0];
    case kRegLvtLint1: return kLvtWritable[kLvtLint1];
    case kRegLvtError: return kLvtWritable[kLvtError];
    default: return std::nullopt;
    }
}

LapicOutputs Lapic::take_outputs() { return std::exchange(outputs_, LapicOutputs{}); }

std::vector<unsigned> route_apic_message(const std::vector<const Lapic*>& apics, const ApicMessage& m,
                                         unsigned rr_start)
{
    std::vector<unsigned> out;
    for (unsigned i = 0; i < apics.size(); ++i) {
        const Lapic& a = *apics[i];
        if (!a.hardware_enabled()) continue;
        const bool self = a.id() == m.source_id;
        bool take = false;
        switch (m.shorthand) {
        case ApicShorthand::kNone: take = a.matches(m.destination, m.logical); break;
        case ApicShorthand::kSelf: take = self; break;
        case ApicShorthand::kAllIncludingSelf: take = true; break;
        case ApicShorthand::kAllExcludingSelf: take = !self; break;
        }
        if (take) out.push_back(i);
    }
    if (m.mode != ApicDeliveryMode::kLowestPriority || out.size() <= 1) return out;
    // 11.6.2.4: the lowest arbitration priority wins; ties rotate from rr_start.
    const size_t n = apics.size();
    unsigned best = out.front();
    unsigned best_rank = ~0u;
    for (unsigned i : out) {
        const unsigned rank = apics[i]->arbitration_priority() * static_cast<unsigned>(n) +
                              static_cast<unsigned>((i + n - rr_start % n) % n);
        if (rank < best_rank) {
            best_rank = rank;
            best = i;
        }
    }
    return {best};
}

}  // namespace kvmini
