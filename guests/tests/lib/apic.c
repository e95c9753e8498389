/* Local APIC, I/O APIC and application processors. See runtime.h for the
 * register constants and their SDM / 82093AA sections. */
#include "runtime.h"

/* ---------------------------------------------------------------- local APIC */

u32 lapic_read(u32 reg) { return mmio_read32(LAPIC_BASE + reg); }
void lapic_write(u32 reg, u32 v) { mmio_write32(LAPIC_BASE + reg, v); }
u32 this_cpu(void) { return lapic_read(APIC_ID) >> 24; }

void lapic_enable(void)
{
    lapic_write(APIC_SVR, APIC_SVR_ENABLE | VEC_LAPIC_SPURIOUS);
    lapic_write(APIC_TPR, 0);
}

void lapic_eoi(void) { lapic_write(APIC_EOI, 0); }

/* 11.8.4: ISR/TMR/IRR are 8 32-bit registers 0x10 apart; vector v is bit
 * v % 32 of register v / 32. */
static int vector_bit(u32 base, u8 v) { return (lapic_read(base + 0x10 * (v >> 5)) >> (v & 31)) & 1; }
int lapic_isr(u8 v) { return vector_bit(APIC_ISR, v); }
int lapic_irr(u8 v) { return vector_bit(APIC_IRR, v); }
int lapic_tmr(u8 v) { return vector_bit(APIC_TMR, v); }

u32 lapic_isr_count(void)
{
    u32 n = 0;
    for (u32 r = 0; r < 8; r++)
        for (u32 bits = lapic_read(APIC_ISR + 0x10 * r); bits; bits &= bits - 1) n++;
    return n;
}

void lapic_ipi(u32 dest, u32 icr_lo)
{
    for (u32 i = 0; i < 10000 && (lapic_read(APIC_ICR_LO) & ICR_BUSY); i++) pause();
    lapic_write(APIC_ICR_HI, dest << 24);
    lapic_write(APIC_ICR_LO, icr_lo);
}

volatile u32 spurious_count;

/* 11.9: the spurious vector needs no EOI. */
void lapic_spurious_handler(struct frame *f)
{
    (void)f;
    atomic_inc(&spurious_count);
}

void ap_wake_handler(struct frame *f)
{
    (void)f;
    lapic_eoi();
}

/* ---------------------------------------------------------------- I/O APIC */

/* 82093AA 3.1: IOREGSEL selects the register, IOWIN reads/writes it. The
 * pair is not atomic: the guests only touch the IOAPIC from one CPU at a time. */
u32 ioapic_read(u32 reg)
{
    mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
    return mmio_read32(IOAPIC_BASE + IOAPIC_WIN);
}

void ioapic_write(u32 reg, u32 v)
{
    mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
    mmio_write32(IOAPIC_BASE + IOAPIC_WIN, v);
}

u32 ioapic_entry_lo(u32 pin) { return ioapic_read(IOAPIC_REG_REDTBL + 2 * pin); }

void ioapic_route(u32 pin, u32 lo, u32 dest)
{
    /* Masked while the destination changes, so no half-written entry fires. */
    ioapic_write(IOAPIC_REG_REDTBL + 2 * pin, IOAPIC_MASKED);
    ioapic_write(IOAPIC_REG_REDTBL + 2 * pin + 1, dest << 24);
    ioapic_write(IOAPIC_REG_REDTBL + 2 * pin, lo);
}

void ioapic_mask(u32 pin, int masked)
{
    u32 lo = ioapic_entry_lo(pin);
    lo = masked ? lo | IOAPIC_MASKED : lo & ~IOAPIC_MASKED;
    ioapic_write(IOAPIC_REG_REDTBL + 2 * pin, lo);
}

void ioapic_mask_all(void)
{
    u32 entries = ((ioapic_read(IOAPIC_REG_VER) >> 16) & 0xff) + 1;
    for (u32 pin = 0; pin < entries && pin < 24; pin++) ioapic_write(IOAPIC_REG_REDTBL + 2 * pin, IOAPIC_MASKED);
}

/* ---------------------------------------------------------------- application processors */

extern char ap_trampoline[], ap_trampoline_end[];
void load_idt(void);
volatile u32 ap_starts[MAX_CPUS];
volatile u32 ap_calls_done[MAX_CPUS];
static void (*volatile ap_fn[MAX_CPUS])(void);

/* Called by the trampoline (boot.S) on the AP's own stack. */
void NORETURN ap_start(u32 id)
{
    load_idt();
    lapic_enable();
    __asm__ volatile("lock orl %1, %0" : "+m"(cpus_online) : "r"(1u << id) : "memory");
    atomic_inc(&ap_starts[id]);
    for (;;) {
        cli();
        void (*fn)(void) = ap_fn[id];
        if (fn) {
            ap_fn[id] = NULL;
            fn();
            atomic_inc(&ap_calls_done[id]);
            continue;
        }
        sti_hlt();  /* woken by VEC_AP_WAKE (or any interrupt) */
    }
}

static int wait_started(u32 id, u32 before, u32 us)
{
    u64 end = rdtsc() + us_to_tsc(us);
    while (ap_starts[id] == before)
        if (rdtsc() >= end) return 0;
    return 1;
}

/* SDM vol. 3A 9.4.4.1 "Typical BSP Initialization Sequence": INIT IPI, then
 * a STARTUP IPI (vector = trampoline page), a second one if the AP has not
 * started. The SDM's 10 ms and 200 us waits are for real hardware; here the
 * BSP waits for the AP to check in instead, with a deadline. */
int start_ap(u32 id)
{
    if (id >= MAX_CPUS) return 0;
    memcpy((void *)(unsigned long)TRAMPOLINE_ADDR, ap_trampoline, (u32)(ap_trampoline_end - ap_trampoline));
    const u32 before = ap_starts[id];
    lapic_ipi(id, ICR_INIT | ICR_ASSERT);
    lapic_ipi(id, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
    if (wait_started(id, before, 200000)) return 1;
    lapic_ipi(id, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
    return wait_started(id, before, 2000000);
}

void ap_call(u32 id, void (*fn)(void))
{
    ap_fn[id] = fn;
    barrier();
    lapic_ipi(id, ICR_FIXED | VEC_AP_WAKE);
}
