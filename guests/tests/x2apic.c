/*
 * The local APIC in x2APIC mode (Intel SDM vol. 3A 11.12): switched on
 * through IA32_APIC_BASE bit 10, then driven through MSRs 0x800-0x8ff only.
 * In user mode every one of these accesses is a KVM MSR exit that kvmini's
 * LAPIC model answers (KVM has no LAPIC to give them to); in kernel and
 * split mode KVM's LAPIC answers them. Checked: the 32-bit x2APIC ID and
 * the derived, read-only LDR (11.12.10.2); SVR; a SELF IPI (0x83f) and a
 * fixed self-IPI through the 64-bit ICR (0x830, destination in 63:32), each
 * delivered once and EOI'd through 0x80b; the ICR's reserved bits and a
 * write to the read-only version register raising #GP; the one-shot timer
 * (0x832 LVT, 0x838 initial count, 0x83e divide) firing once; MMIO no
 * longer decoding (11.12.1). Skipped where CPUID does not show x2APIC.
 */
#include "runtime.h"

#define MSR_APIC_BASE 0x1b
#define APIC_BASE_EXTD (1u << 10)
#define X2_ID 0x802
#define X2_VERSION 0x803
#define X2_TPR 0x808
#define X2_EOI 0x80b
#define X2_LDR 0x80d
#define X2_SVR 0x80f
#define X2_ICR 0x830
#define X2_LVT_TIMER 0x832
#define X2_TIMER_INIT 0x838
#define X2_TIMER_DIV 0x83e
#define X2_SELF_IPI 0x83f

#define V_SELF 0x51
#define V_ICR 0x52
#define V_TIMER 0x53

static volatile u32 self_irqs, icr_irqs, timer_irqs;

static void on_self(struct frame *f) { (void)f; self_irqs++; wrmsr(X2_EOI, 0); }
static void on_icr(struct frame *f) { (void)f; icr_irqs++; wrmsr(X2_EOI, 0); }
static void on_timer(struct frame *f) { (void)f; timer_irqs++; wrmsr(X2_EOI, 0); }

void test_main(void)
{
    test_start("x2apic", "the LAPIC through x2APIC MSRs: ID, LDR, SVR, SELF IPI, ICR, timer, #GP");
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    if (!(c & (1u << 21))) skip("CPUID.1:ECX[21] shows no x2APIC");
    set_handler(V_SELF, on_self);
    set_handler(V_ICR, on_icr);
    set_handler(V_TIMER, on_timer);

    const u32 xapic_id = lapic_read(APIC_ID) >> 24;
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_EXTD);
    check(rdmsr(MSR_APIC_BASE) & APIC_BASE_EXTD, "IA32_APIC_BASE reads back x2APIC mode");
    const u64 id = rdmsr(X2_ID);
    check(id == xapic_id, "x2APIC ID %llu is the xAPIC ID %u, all 32 bits", (unsigned long long)id, xapic_id);
    const u64 ldr = rdmsr(X2_LDR);
    check(ldr == (((id >> 4) << 16) | (1u << (id & 15))), "LDR derived from the ID: %#llx", (unsigned long long)ldr);
    check(wrmsr_safe(X2_LDR, 0x5) != 0, "LDR is read-only in x2APIC mode (#GP on write)");
    check(wrmsr_safe(X2_VERSION, 0) != 0, "the version register is read-only (#GP on write)");

    wrmsr(X2_SVR, 0x100 | 0xff);
    check((rdmsr(X2_SVR) & 0x1ff) == 0x1ff, "SVR enabled through its MSR");
    wrmsr(X2_TPR, 0);

    cli();
    wrmsr(X2_SELF_IPI, V_SELF);
    sti_delay(1000);
    check(self_irqs == 1, "SELF IPI delivered once (%u)", self_irqs);

    cli();
    wrmsr(X2_ICR, ((u64)id << 32) | V_ICR);  /* fixed, physical, to this CPU */
    sti_delay(1000);
    check(icr_irqs == 1, "fixed IPI through the 64-bit ICR delivered once (%u)", icr_irqs);
    check(wrmsr_safe(X2_SELF_IPI, 0x100 | V_SELF) != 0, "SELF IPI with reserved bits set: #GP");

    wrmsr(X2_TIMER_DIV, 0xb);                 /* divide by 1 */
    wrmsr(X2_LVT_TIMER, V_TIMER);             /* one-shot, unmasked */
    wrmsr(X2_TIMER_INIT, 1000000);            /* 1 ms at KVM's and kvmini's 1 GHz bus */
    hlt_until_ge(&timer_irqs, 1, 200000);
    sti_delay(5000);
    check(timer_irqs == 1, "one-shot timer through MSRs fired once (%u)", timer_irqs);

    const u32 mmio_svr = lapic_read(APIC_SVR);
    check(mmio_svr != 0x1ff, "xAPIC MMIO no longer decodes: SVR reads %#x there, not the MSR's 0x1ff", mmio_svr);
    finish();
}
