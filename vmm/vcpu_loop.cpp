#include "vmm/vcpu_loop.h"

#include <sys/ioctl.h>

#include <chrono>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "devices/bus.h"
#include "irqchip/irqchip.h"
#include "vmm/error.h"
#include "vmm/exit_stats.h"
#include "vmm/guest_memory.h"
#include "vmm/kvm.h"
#include "vmm/vm_control.h"

namespace kvmini {

namespace {
// Opcodes KVM's emulator may hand back (Intel SDM vol. 2, INT n/INTO/INT3/INT1).
constexpr uint8_t kOpInt3 = 0xcc;
constexpr uint8_t kOpIntN = 0xcd;
constexpr uint8_t kOpFwait = 0x9b;  // WAIT/FWAIT
constexpr uint8_t kVectorBreakpoint = 3;
constexpr uint8_t kVectorDeviceNotAvailable = 7;  // #NM
constexpr uint8_t kVectorX87Fpu = 16;             // #MF
constexpr uint64_t kCr0Mp = 1u << 1, kCr0Ts = 1u << 3;
constexpr uint16_t kFswErrorSummary = 1u << 7;  // x87 status word ES: an unmasked exception is pending
}  // namespace

const char* exit_reason_name(uint32_t reason)
{
    switch (reason) {
    case KVM_EXIT_UNKNOWN: return "unknown";
    case KVM_EXIT_EXCEPTION: return "exception";
    case KVM_EXIT_IO: return "io";
    case KVM_EXIT_HYPERCALL: return "hypercall";
    case KVM_EXIT_DEBUG: return "debug";
    case KVM_EXIT_HLT: return "hlt";
    case KVM_EXIT_MMIO: return "mmio";
    case KVM_EXIT_IRQ_WINDOW_OPEN: return "irq_window_open";
    case KVM_EXIT_SHUTDOWN: return "shutdown";
    case KVM_EXIT_FAIL_ENTRY: return "fail_entry";
    case KVM_EXIT_INTR: return "intr";
    case KVM_EXIT_SET_TPR: return "set_tpr";
    case KVM_EXIT_TPR_ACCESS: return "tpr_access";
    case KVM_EXIT_NMI: return "nmi";
    case KVM_EXIT_INTERNAL_ERROR: return "internal_error";
    case KVM_EXIT_SYSTEM_EVENT: return "system_event";
    case KVM_EXIT_IOAPIC_EOI: return "ioapic_eoi";
    case KVM_EXIT_X86_RDMSR: return "rdmsr";
    case KVM_EXIT_X86_WRMSR: return "wrmsr";
    default: return "other";
    }
}

std::string format_registers(const kvm_regs& r, const kvm_sregs& s)
{
    return fmt::format(
        "RIP={:016x} RSP={:016x} RFLAGS={:08x}\n"
        "RAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}\n"
        "RSI={:016x} RDI={:016x} RBP={:016x}\n"
        "R8 ={:016x} R9 ={:016x} R10={:016x} R11={:016x}\n"
        "R12={:016x} R13={:016x} R14={:016x} R15={:016x}\n"
        "CS={:04x} (base {:x}, L={} D={}) SS={:04x} DS={:04x}\n"
        "CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x} EFER={:x}\n"
        "GDT={:x}/{:x} IDT={:x}/{:x}",
        r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15, s.cs.selector, s.cs.base, s.cs.l, s.cs.db, s.ss.selector, s.ds.selector, s.cr0, s.cr2,
        s.cr3, s.cr4, s.efer, s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
}

void VcpuLoop::run()
{
    try {
        run_until_stopped();
    } catch (const std::exception& e) {
        control_.request_stop(1, fmt::format("vCPU {}: {}", vcpu_.index(), e.what()));
    }
    if (spdlog::should_log(spdlog::level::debug)) {
        try {
            spdlog::debug("vCPU {} stopped at RIP {:#x}", vcpu_.index(), vcpu_.regs().rip);
        } catch (const std::exception&) {
        }
    }
}

void VcpuLoop::run_until_stopped()
{
    vcpu_.bind_to_current_thread();
    kvm_run& run = *vcpu_.run();
    int64_t unset = 0;
    stats_.first_run_ns.compare_exchange_strong(
        unset, std::chrono::steady_clock::now().time_since_epoch() / std::chrono::nanoseconds(1));
    while (!control_.stopping()) {
        if (!irqchip_.before_run(vcpu_)) continue;
        if (::ioctl(vcpu_.fd(), KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                __atomic_store_n(&run.immediate_exit, 0, __ATOMIC_SEQ_CST);
                stats_.kicks.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            throw_errno("KVM_RUN");
        }
        stats_.count(run.exit_reason);
        switch (run.exit_reason) {
        case KVM_EXIT_IO: handle_io(run); break;
        case KVM_EXIT_MMIO: handle_mmio(run); break;
        case KVM_EXIT_HLT: irqchip_.on_halt(vcpu_); break;
        case KVM_EXIT_IRQ_WINDOW_OPEN: irqchip_.on_interrupt_window(vcpu_); break;
        case KVM_EXIT_IOAPIC_EOI: irqchip_.on_eoi(vcpu_, run.eoi.vector); break;
        case KVM_EXIT_INTR: break;
        // The guest lowered CR8 below a pending interrupt's class: before_run()
        // looks at the TPR again.
        case KVM_EXIT_SET_TPR: break;
        case KVM_EXIT_X86_RDMSR: {
            uint64_t value = 0;
            run.msr.error = irqchip_.read_msr(vcpu_, run.msr.index, value) ? 0 : 1;
            run.msr.data = value;
            break;
        }
        case KVM_EXIT_X86_WRMSR: run.msr.error = irqchip_.write_msr(vcpu_, run.msr.index, run.msr.data) ? 0 : 1; break;
        case KVM_EXIT_SYSTEM_EVENT: handle_system_event(run); break;
        case KVM_EXIT_INTERNAL_ERROR: handle_internal_error(run); break;
        case KVM_EXIT_SHUTDOWN: {
            const auto regs = vcpu_.regs();
            const auto sregs = vcpu_.sregs();
            // KVM on AMD SVM resets the vCPU before it reports a shutdown
            // (svm.c shutdown_interception): registers at the reset vector
            // then say nothing about where the guest faulted.
            const bool reset_state = regs.rip == 0xfff0 && sregs.cs.selector == 0xf000;
            const char* note = reset_state ? " (these are the CPU's reset values: this KVM (AMD SVM) resets the vCPU "
                                             "before reporting a shutdown, so the faulting state is lost)"
                                           : "";
            spdlog::error("vCPU {}: triple fault (shutdown); registers{}:\n{}", vcpu_.index(), note,
                          format_registers(regs, sregs));
            control_.request_stop(1, fmt::format("vCPU {}: guest triple fault {}", vcpu_.index(),
                                                 reset_state ? std::string("(registers already reset by KVM)")
                                                             : fmt::format("at RIP {:#x}", regs.rip)));
            return;
        }
        case KVM_EXIT_FAIL_ENTRY:
            control_.request_stop(1, fmt::format("vCPU {}: KVM_RUN failed to enter the guest (hardware reason {:#x})",
                                                 vcpu_.index(), run.fail_entry.hardware_entry_failure_reason));
            return;
        default:
            control_.request_stop(1, fmt::format("vCPU {}: unexpected exit {} ({})", vcpu_.index(), run.exit_reason,
                                                 exit_reason_name(run.exit_reason)));
            return;
        }
    }
}

void VcpuLoop::handle_io(kvm_run& run)
{
    auto* base = reinterpret_cast<uint8_t*>(&run) + run.io.data_offset;
    const uint16_t port = run.io.port;
    (*stats_.by_port)[port].fetch_add(1, std::memory_order_relaxed);
    for (uint32_t i = 0; i < run.io.count; ++i) {
        uint8_t* data = base + i * run.io.size;
        if (run.io.direction == KVM_EXIT_IO_OUT)
            pio_.write(port, std::span<const uint8_t>(data, run.io.size));
        else
            pio_.read(port, std::span<uint8_t>(data, run.io.size));
    }
}

void VcpuLoop::handle_mmio(kvm_run& run)
{
    const uint32_t len = std::min<uint32_t>(run.mmio.len, sizeof run.mmio.data);
    if (irqchip_.handle_mmio(vcpu_, run.mmio.phys_addr, std::span<uint8_t>(run.mmio.data, len), run.mmio.is_write))
        return;
    if (run.mmio.is_write)
        mmio_.write(run.mmio.phys_addr, std::span<const uint8_t>(run.mmio.data, len));
    else
        mmio_.read(run.mmio.phys_addr, std::span<uint8_t>(run.mmio.data, len));
}

void VcpuLoop::handle_system_event(kvm_run& run)
{
    switch (run.system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN: control_.request_stop(0, "guest powered off"); break;
    case KVM_SYSTEM_EVENT_RESET: control_.request_stop(0, "guest reset"); break;
    default:
        control_.request_stop(1, fmt::format("vCPU {}: guest system event {} (crash)", vcpu_.index(),
                                             run.system_event.type));
        break;
    }
}

std::string VcpuLoop::instruction_bytes(const kvm_regs& regs, const kvm_sregs& sregs, uint8_t* out, size_t& len)
{
    len = 0;
    uint64_t linear = sregs.cs.base + regs.rip;
    while (len < 15) {
        kvm_translation tr{};
        tr.linear_address = linear;
        if (::ioctl(vcpu_.fd(), KVM_TRANSLATE, &tr) < 0 || !tr.valid) break;
        const uint64_t in_page = 4096 - (tr.physical_address & 4095);
        const size_t n = std::min<uint64_t>(15 - len, in_page);
        if (!memory_.read(tr.physical_address, out + len, n)) break;
        len += n;
        linear += n;
    }
    std::string hex;
    for (size_t i = 0; i < len; ++i) hex += fmt::format("{}{:02x}", i ? " " : "", out[i]);
    return hex.empty() ? "unreadable" : hex;
}

bool VcpuLoop::complete_instruction(kvm_regs& regs, const kvm_sregs& sregs, const uint8_t* insn, size_t len)
{
    // KVM's emulator gives up on these here (HOST-KVM.md). Finish the
    // instruction for it as the CPU would (Intel SDM vol. 2: INT n/INT3,
    // WAIT/FWAIT): step past it and deliver what it raises through the
    // guest's IDT.
    kvm_vcpu_events events{};
    KVM_IOCTL(vcpu_.fd(), KVM_GET_VCPU_EVENTS, &events);
    events.flags = 0;
    auto raise_exception = [&](uint8_t vector) {
        events.exception.injected = 1;
        events.exception.nr = vector;
        events.exception.has_error_code = 0;
    };
    const char* what;
    if (insn[0] == kOpInt3) {
        regs.rip += 1;
        raise_exception(kVectorBreakpoint);
        stats_.int3_completions.fetch_add(1, std::memory_order_relaxed);
        what = "INT3";
    } else if (insn[0] == kOpIntN && len >= 2) {
        regs.rip += 2;
        events.interrupt.injected = 1;
        events.interrupt.nr = insn[1];
        events.interrupt.soft = 0;
        stats_.intn_completions.fetch_add(1, std::memory_order_relaxed);
        what = "INT n";
    } else if (insn[0] == kOpFwait) {
        // A no-op unless the FPU is unavailable (#NM, faulting: RIP stays)
        // or an unmasked x87 exception is pending (#MF, before the WAIT).
        kvm_fpu fpu{};
        KVM_IOCTL(vcpu_.fd(), KVM_GET_FPU, &fpu);
        if ((sregs.cr0 & (kCr0Mp | kCr0Ts)) == (kCr0Mp | kCr0Ts))  // SDM: WAIT/FWAIT #NM condition
            raise_exception(kVectorDeviceNotAvailable);
        else if (fpu.fsw & kFswErrorSummary)
            raise_exception(kVectorX87Fpu);
        else
            regs.rip += 1;
        stats_.fwait_completions.fetch_add(1, std::memory_order_relaxed);
        what = "FWAIT";
    } else {
        return false;
    }
    vcpu_.set_regs(regs);
    KVM_IOCTL(vcpu_.fd(), KVM_SET_VCPU_EVENTS, &events);
    spdlog::debug("vCPU {}: completed {} for KVM; RIP now {:#x}", vcpu_.index(), what, regs.rip);
    return true;
}

void VcpuLoop::handle_internal_error(kvm_run& run)
{
    kvm_regs regs = vcpu_.regs();
    const kvm_sregs sregs = vcpu_.sregs();
    uint8_t insn[15];
    size_t len = 0;
    const std::string hex = instruction_bytes(regs, sregs, insn, len);

    if (run.internal.suberror == KVM_INTERNAL_ERROR_EMULATION && len >= 1 && complete_instruction(regs, sregs, insn, len))
        return;

    spdlog::error("vCPU {}: KVM internal error, suberror {}{}; registers:\n{}", vcpu_.index(), run.internal.suberror,
                  run.internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? " (instruction emulation failed)" : "",
                  format_registers(regs, sregs));
    control_.request_stop(1, fmt::format("vCPU {}: KVM could not emulate the instruction at RIP {:#x} (bytes: {})",
                                         vcpu_.index(), regs.rip, hex));
}

}  // namespace kvmini
