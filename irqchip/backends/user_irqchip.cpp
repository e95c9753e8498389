#include "irqchip/backends/user_irqchip.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

#include "devices/le.h"
#include "vmm/cpuid.h"
#include "vmm/error.h"
#include "vmm/kvm.h"

namespace kvmini {

namespace {
// The boot vCPU, whose LINT0 takes the 8259A's ExtINT (virtual wire).
constexpr unsigned kExtIntVcpu = 0;

// KVM paravirt features that work through KVM's own LAPIC
// (Documentation/virt/kvm/x86/cpuid.rst): without it they deliver nothing.
constexpr uint32_t kKvmFeatureAsyncPf = 1u << 4;
constexpr uint32_t kKvmFeaturePvEoi = 1u << 6;
constexpr uint32_t kKvmFeatureAsyncPfInt = 1u << 14;
constexpr uint32_t kKvmFeaturesNeedingKvmLapic = kKvmFeatureAsyncPf | kKvmFeaturePvEoi |
                                                 cpuid_bits::kKvmFeaturePvUnhalt | cpuid_bits::kKvmFeaturePvSendIpi |
                                                 kKvmFeatureAsyncPfInt;

// How late a guest's CR8 lowering may be seen where KVM does not report it
// (KVM_EXIT_SET_TPR): the period of the kicks while a vector waits on the TPR.
constexpr uint64_t kTprWatchNs = 1'000'000;

bool is_timer_register(uint32_t offset)
{
    return offset == Lapic::kRegLvtTimer || offset == Lapic::kRegTimerInitial || offset == Lapic::kRegTimerDivide;
}
}  // namespace

UserIrqChip::UserIrqChip(PitPolicy pit_policy)
    : chipset_(pit_policy, PcChipset::Outputs{
                               .deliver = [this](const IoapicDelivery& d) { deliver(to_apic_message(d)); },
                               .pic_output = [this](bool level) { on_pic_output(level); },
                               .pit_tick = [this] { on_pit_tick(); },
                           })
{
    chipset_.pace_ticks_by_eoi();  // every EOI comes through kvmini's LAPICs
}

UserIrqChip::~UserIrqChip()
{
    // Both timer threads end before anything they reach goes.
    chipset_.stop();
    if (apic_timer_) apic_timer_->stop();
}

void UserIrqChip::create(Vm& vm)
{
    const Kvm& kvm = vm.kvm();
    KVM_REQUIRE(kvm, KVM_CAP_X86_USER_SPACE_MSR);
    KVM_REQUIRE(kvm, KVM_CAP_X86_MSR_FILTER);
    // x2APIC MSRs are invalid for KVM without its LAPIC: hand them to us.
    kvm_enable_cap cap{};
    cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
    cap.args[0] = KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_FILTER;
    KVM_IOCTL(vm.fd(), KVM_ENABLE_CAP, &cap);
    // IA32_TSC_DEADLINE is valid for KVM, which would drop writes without
    // its LAPIC: deny it to the guest so that it comes to us.
    static uint8_t deny = 0;
    kvm_msr_filter filter{};
    filter.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
    filter.ranges[0].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
    filter.ranges[0].nmsrs = 1;
    filter.ranges[0].base = Lapic::kMsrTscDeadline;
    filter.ranges[0].bitmap = &deny;
    KVM_IOCTL(vm.fd(), KVM_X86_SET_MSR_FILTER, &filter);
    spdlog::debug("irqchip: user: PIC, IOAPIC, PIT and LAPICs in kvmini ({})",
                  chipset_.pit_policy() == PitPolicy::kReinject ? "reinject" : "discard");
}

void UserIrqChip::attach_vcpu(IrqVcpu& vcpu)
{
    auto c = std::make_unique<Cpu>(vcpu);
    c->lapic.set_virtual_wire();  // as the BIOS leaves it, and as kernel/split modes set KVM's
    // Without its LAPIC, KVM keeps IA32_APIC_BASE as a plain value: give it
    // the APIC's (the guest reads it with RDMSR).
    vcpu.set_apic_base(c->lapic.apic_base());
    c->apic_base_seen = c->lapic.apic_base();
    // Every vCPU starts runnable in KVM without its LAPIC: the APs wait here
    // for INIT and SIPI instead.
    c->state = vcpu.index() == 0 ? RunState::kRunning : RunState::kWaitForSipi;
    std::lock_guard lock(mutex_);
    lapics_.push_back(&c->lapic);
    cpus_.push_back(std::move(c));
}

void UserIrqChip::attach_buses(Bus& pio, Bus& mmio)
{
    chipset_.attach(pio, mmio);
    apic_timer_ = std::make_unique<DeadlineTimer>(
        "LAPIC timers", [this] { return next_timer_ns(); }, [this](uint64_t now) { on_timer(now); });
    apic_timer_->start();  // after apic_timer_ is set: vCPU threads poke it
}

void UserIrqChip::filter_cpuid(std::vector<kvm_cpuid_entry2>& entries) const
{
    // x2APIC and TSC-deadline stay: both are emulated here. What works only
    // through KVM's LAPIC goes, whatever the profile.
    for (auto& e : entries)
        if (e.function == cpuid_bits::kKvmLeafFeatures) e.eax &= ~kKvmFeaturesNeedingKvmLapic;
}

UserIrqChip::Cpu& UserIrqChip::cpu(const IrqVcpu& vcpu) { return *cpus_.at(vcpu.index()); }

// --- delivery ---

void UserIrqChip::send_msi(const MsiMessage& msg)
{
    msis_.fetch_add(1, std::memory_order_relaxed);
    deliver(apic_message_from_msi(msg.address, msg.data));
}

void UserIrqChip::deliver(const ApicMessage& m)
{
    KickList kicks;
    {
        std::lock_guard lock(mutex_);
        deliver_locked(m, kicks);
    }
    kick_all(kicks);
}

void UserIrqChip::deliver_locked(const ApicMessage& m, KickList& kicks)
{
    const auto targets = route_apic_message(lapics_, m, lowest_priority_rr_);
    if (m.mode != ApicDeliveryMode::kFixed && spdlog::should_log(spdlog::level::debug))
        spdlog::debug("irqchip: user: mode {} vector {:#x} dest {:#x}{} shorthand {} from {} -> {} APIC(s)",
                      static_cast<int>(m.mode), m.vector, m.destination, m.logical ? " logical" : "",
                      static_cast<int>(m.shorthand), m.source_id, targets.size());
    if (m.mode == ApicDeliveryMode::kLowestPriority) ++lowest_priority_rr_;
    if (targets.empty()) {
        // An interrupt nobody takes is lost, as on the bus: counted.
        undeliverable_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    for (unsigned i : targets) {
        Cpu& c = *cpus_[i];
        c.lapic.accept(m);
        wake_locked(c, kicks);
    }
}

void UserIrqChip::wake_locked(Cpu& c, KickList& kicks)
{
    if (c.state != RunState::kRunning) {
        c.cv.notify_one();
        return;
    }
    // A vCPU's own thread looks again in before_run() anyway: no kick.
    if (c.runner != std::this_thread::get_id()) kicks.push_back(&c.vcpu);
}

void UserIrqChip::kick_all(const KickList& kicks)
{
    for (IrqVcpu* v : kicks) v->kick();
}

void UserIrqChip::kick(IrqVcpu& vcpu)
{
    {
        std::lock_guard lock(mutex_);
        Cpu& c = cpu(vcpu);
        c.kicked = true;
        c.cv.notify_one();
    }
    vcpu.kick();
}

void UserIrqChip::on_pic_output(bool level)
{
    if (!level || cpus_.size() <= kExtIntVcpu) return;
    KickList kicks;
    {
        std::lock_guard lock(mutex_);
        wake_locked(*cpus_[kExtIntVcpu], kicks);
    }
    kick_all(kicks);
}

void UserIrqChip::on_pit_tick()
{
    // The NMI-watchdog virtual wire: the PIT's OUT0 also reaches each LINT0
    // programmed for NMI.
    KickList kicks;
    {
        std::lock_guard lock(mutex_);
        for (auto& c : cpus_) {
            if (!c->lapic.lint0_is_nmi()) continue;
            ApicMessage nmi;
            nmi.mode = ApicDeliveryMode::kNmi;
            c->lapic.accept(nmi);
            wake_locked(*c, kicks);
        }
    }
    kick_all(kicks);
}

std::optional<uint64_t> UserIrqChip::next_timer_ns()
{
    std::lock_guard lock(mutex_);
    std::optional<uint64_t> next;
    auto earliest = [&](std::optional<uint64_t> t) {
        if (t) next = next ? std::min(*next, *t) : *t;
    };
    for (auto& c : cpus_) {
        earliest(c->lapic.next_timer_ns());
        earliest(c->tpr_watch_ns);
    }
    return next;
}

void UserIrqChip::on_timer(uint64_t now_ns)
{
    KickList kicks;
    {
        std::lock_guard lock(mutex_);
        for (auto& c : cpus_) {
            const uint64_t fired = c->lapic.stats().timer_fires;
            c->lapic.advance_time(now_ns);
            bool wake = c->lapic.stats().timer_fires != fired;
            if (c->tpr_watch_ns && now_ns >= *c->tpr_watch_ns) {
                c->tpr_watch_ns.reset();  // before_run() re-arms it while the vector still waits
                ++c->tpr_watch_kicks;
                wake = true;
            }
            if (wake) wake_locked(*c, kicks);
        }
    }
    kick_all(kicks);
}

// --- the vCPU loop's side ---

bool UserIrqChip::extint_ready_locked(const Cpu& c)
{
    return c.vcpu.index() == kExtIntVcpu && c.lapic.lint0_accepts_extint() && chipset_.pic().output();
}

bool UserIrqChip::wakeup_pending_locked(Cpu& c)
{
    if (c.lapic.nmi_pending() || c.lapic.init_pending()) return true;
    return c.halted_with_if && (c.lapic.pending_vector() || extint_ready_locked(c));
}

void UserIrqChip::sync_from_exit_locked(Cpu& c)
{
    if (!c.entered) return;
    // CR8 moved in the guest (MOV to CR8): that is the TPR now. Otherwise
    // keep the APIC's TPR, which an MMIO write may have changed.
    if (c.vcpu.exit_cr8() != c.cr8_sent) c.lapic.set_cr8(c.vcpu.exit_cr8());
    if (const uint64_t base = c.vcpu.exit_apic_base(); base != c.apic_base_seen) {
        c.lapic.set_apic_base(base);
        c.apic_base_seen = base;
        if (apic_timer_) apic_timer_->poke();
    }
}

void UserIrqChip::reset_for_init_locked(Cpu& c)
{
    // 11.4.7.3 / SDM vol. 3A 9.1.1: INIT resets the processor but keeps
    // IA32_APIC_BASE and the APIC ID; an AP then waits for a SIPI, the boot
    // CPU starts at the reset vector (as KVM does).
    ++c.inits;
    c.lapic.reset();
    c.vcpu.reset_to_init_state(c.lapic.apic_base());
    c.state = c.vcpu.index() == 0 ? RunState::kRunning : RunState::kWaitForSipi;
    if (apic_timer_) apic_timer_->poke();
}

void UserIrqChip::start_at_sipi_locked(Cpu& c, uint8_t vector)
{
    ++c.sipis;
    c.vcpu.start_at_sipi(vector, c.lapic.apic_base());
    c.state = RunState::kRunning;
}

bool UserIrqChip::before_run(IrqVcpu& vcpu)
{
    Cpu& c = cpu(vcpu);
    std::unique_lock lock(mutex_);
    c.runner = std::this_thread::get_id();
    sync_from_exit_locked(c);
    for (;;) {
        if (c.lapic.take_init()) reset_for_init_locked(c);
        if (auto sipi = c.lapic.take_sipi(); sipi && c.state == RunState::kWaitForSipi)
            start_at_sipi_locked(c, *sipi);  // a SIPI outside wait-for-SIPI is ignored
        if (c.state == RunState::kHalted && wakeup_pending_locked(c)) {
            c.state = RunState::kRunning;
            ++c.wakeups;
        }
        if (c.state == RunState::kRunning) break;
        if (c.kicked) {
            c.kicked = false;
            return false;
        }
        c.cv.wait(lock);
    }
    c.kicked = false;

    const bool nmi = c.lapic.take_nmi();
    const bool ready = vcpu.ready_for_interrupt() && vcpu.interrupts_enabled();
    const bool extint = ready && extint_ready_locked(c);
    std::optional<uint8_t> vector;
    if (ready && !extint && c.lapic.pending_vector()) vector = c.lapic.acknowledge();
    lock.unlock();

    if (nmi) vcpu.inject_nmi();
    // The 8259A's INTA cycle, outside the lock: the chip's outputs come back here.
    if (extint) vector = chipset_.pic().acknowledge();
    // Without KVM's LAPIC, KVM_INTERRUPT overwrites rather than refuses; a
    // refusal here would be a KVM that disagrees: counted.
    const bool injected = vector && vcpu.inject_interrupt(*vector);
    if (vector && !injected) refused_injections_.fetch_add(1, std::memory_order_relaxed);

    lock.lock();
    if (nmi) ++c.nmis;
    if (injected) {
        ++c.injections;
        if (extint) ++c.extint_injections;
    }
    // One vector per entry; a window for the rest, and no stale request.
    const bool more = c.lapic.pending_vector().has_value() || extint_ready_locked(c);
    if (more && !vcpu.interrupt_window_requested()) ++c.windows;
    vcpu.request_interrupt_window(more);
    bool poke_timer = false;
    if (!c.lapic.vector_held_by_tpr()) {
        c.tpr_watch_ns.reset();
    } else if (!c.tpr_watch_ns) {
        c.tpr_watch_ns = DeadlineTimer::now_ns() + kTprWatchNs;
        poke_timer = true;
    }
    c.cr8_sent = c.lapic.cr8();
    vcpu.set_cr8(c.cr8_sent);
    c.entered = true;
    lock.unlock();
    if (poke_timer && apic_timer_) apic_timer_->poke();
    return true;
}

void UserIrqChip::on_halt(IrqVcpu& vcpu)
{
    Cpu& c = cpu(vcpu);
    std::lock_guard lock(mutex_);
    sync_from_exit_locked(c);
    c.halted_with_if = vcpu.interrupts_enabled();
    ++c.halts;
    if (!wakeup_pending_locked(c)) c.state = RunState::kHalted;
}

// --- the APIC's registers ---

LapicOutputs UserIrqChip::drain_outputs_locked(Cpu& c, KickList& kicks)
{
    LapicOutputs out = c.lapic.take_outputs();
    for (const ApicMessage& m : out.ipis) {
        ipis_.fetch_add(1, std::memory_order_relaxed);
        ++ipis_by_mode_[static_cast<unsigned>(m.mode) & 7];
        deliver_locked(m, kicks);
    }
    out.ipis.clear();
    return out;
}

void UserIrqChip::finish_access(const LapicOutputs& out, const KickList& kicks, bool timer_changed)
{
    kick_all(kicks);
    for (uint8_t v : out.level_eois) {
        level_eois_.fetch_add(1, std::memory_order_relaxed);
        chipset_.ioapic_eoi(v);
    }
    for (uint8_t v : out.eoi_vectors) chipset_.lapic_eoi(v);
    if (timer_changed && apic_timer_) apic_timer_->poke();
}

bool UserIrqChip::handle_mmio(IrqVcpu& vcpu, uint64_t addr, std::span<uint8_t> data, bool is_write)
{
    Cpu& c = cpu(vcpu);
    KickList kicks;
    LapicOutputs eois;
    bool timer_changed = false;
    {
        std::lock_guard lock(mutex_);
        sync_from_exit_locked(c);
        const uint64_t base = c.lapic.mmio_base();
        if (!c.lapic.hardware_enabled() || c.lapic.x2apic_mode() || addr < base || addr >= base + Lapic::kPageSize)
            return false;
        const auto offset = static_cast<uint32_t>(addr - base);
        const uint64_t now = DeadlineTimer::now_ns();
        if (data.size() != 4) {
            // The APIC decodes 32-bit accesses only (11.4.1): others read 0.
            if (!is_write) std::fill(data.begin(), data.end(), 0);
            return true;
        }
        if (is_write) {
            c.lapic.write_mmio(offset, le::load32(data.data()), now);
            if (offset == Lapic::kRegEoi) eois_.fetch_add(1, std::memory_order_relaxed);
            timer_changed = is_timer_register(offset);
            eois = drain_outputs_locked(c, kicks);
        } else {
            le::store32(data.data(), c.lapic.read_mmio(offset, now));
        }
    }
    finish_access(eois, kicks, timer_changed);
    return true;
}

bool UserIrqChip::read_msr(IrqVcpu& vcpu, uint32_t index, uint64_t& value)
{
    Cpu& c = cpu(vcpu);
    std::lock_guard lock(mutex_);
    sync_from_exit_locked(c);
    if (index == Lapic::kMsrTscDeadline) {
        value = c.lapic.tsc_deadline();
        return true;
    }
    return c.lapic.read_msr(index, value, DeadlineTimer::now_ns());
}

bool UserIrqChip::write_msr(IrqVcpu& vcpu, uint32_t index, uint64_t value)
{
    Cpu& c = cpu(vcpu);
    KickList kicks;
    LapicOutputs eois;
    bool ok;
    bool timer_changed = false;
    {
        std::lock_guard lock(mutex_);
        sync_from_exit_locked(c);
        const uint64_t now = DeadlineTimer::now_ns();
        if (index == Lapic::kMsrTscDeadline) {
            // 11.5.4.1: the timer fires when the TSC reaches the value. The
            // guest's TSC runs at tsc_khz; turn the distance into time.
            std::optional<uint64_t> expires;
            if (value != 0) {
                const uint64_t tsc = vcpu.guest_tsc();
                const uint64_t khz = vcpu.tsc_khz() ? vcpu.tsc_khz() : 1'000'000;
                const uint64_t cycles = value > tsc ? value - tsc : 0;
                const unsigned __int128 ns = static_cast<unsigned __int128>(cycles) * 1'000'000 / khz;
                expires = now + static_cast<uint64_t>(std::min<unsigned __int128>(ns, UINT64_MAX / 2));
            }
            c.lapic.set_tsc_deadline(value, expires);
            c.lapic.advance_time(now);  // a deadline already past fires at once
            timer_changed = true;
            ok = true;
        } else {
            ok = c.lapic.write_msr(index, value, now);
            if (ok && index >= Lapic::kMsrX2apicFirst) {
                const uint32_t offset = (index - Lapic::kMsrX2apicFirst) << 4;
                if (offset == Lapic::kRegEoi) eois_.fetch_add(1, std::memory_order_relaxed);
                timer_changed = is_timer_register(offset);
            }
        }
        eois = drain_outputs_locked(c, kicks);
    }
    finish_access(eois, kicks, timer_changed);
    return ok;
}

IrqChipStats UserIrqChip::stats() const
{
    IrqChipStats s;
    s.gsi_raises = chipset_.gsi_raises();
    s.msis = msis_.load();
    s.eois = eois_.load();
    s.undeliverable = undeliverable_.load();
    std::lock_guard lock(mutex_);
    for (const auto& c : cpus_) {
        s.injections += c->injections;
        const LapicStats& l = c->lapic.stats();
        s.details.push_back(fmt::format(
            "vCPU {}: injected={} (extint={}) nmis={} irq_windows={} halts={} wakeups={} init={} sipi={} "
            "tpr_watch_kicks={} "
            "apic: accepted={} coalesced={} eois={} level_eois={} ipis_sent={} timer_fires={} spurious={} "
            "dropped_disabled={} illegal_vectors={} odd_accesses={}",
            c->vcpu.index(), c->injections, c->extint_injections, c->nmis, c->windows, c->halts, c->wakeups,
            c->inits, c->sipis, c->tpr_watch_kicks, l.accepted, l.coalesced, l.eois, l.level_eois, l.ipis_sent, l.timer_fires, l.spurious,
            l.dropped_disabled, l.illegal_vectors, l.odd_accesses));
    }
    const auto& by = ipis_by_mode_;
    using M = ApicDeliveryMode;
    auto n = [&](M m) { return by[static_cast<unsigned>(m)]; };
    s.details.push_back(fmt::format(
        "apic bus: ipis={} (fixed={} lowest={} nmi={} init={} sipi={} smi={}) level_eois_to_ioapic={} "
        "undeliverable={} refused_injections={}",
        ipis_.load(), n(M::kFixed), n(M::kLowestPriority), n(M::kNmi), n(M::kInit), n(M::kStartup), n(M::kSmi),
        level_eois_.load(), undeliverable_.load(), refused_injections_.load()));
    return s;
}

}  // namespace kvmini
