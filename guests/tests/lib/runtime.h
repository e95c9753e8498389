/* The test guests' runtime: a freestanding 64-bit environment (identity
 * mapped, CPL0; boot.S says why not 32-bit protected mode) with polled serial
 * output, an IDT whose handlers a test installs per vector, helpers for the
 * interrupt controllers, timers and application processors, and pass/fail
 * reporting through isa-debug-exit.
 *
 * Cost model (shared/HOST-KVM.md, this project's software-KVM hosts):
 * every guest instruction at CPL0 is emulated (~650 ns) and every exit to the
 * VMM costs ~10 us, so the runtime keeps loops short, prints little, and
 * waits for interrupts with HLT where it can. */
#pragma once

#include "layout.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed char s8;
typedef int s32;
typedef long long s64;
typedef __builtin_va_list va_list;
#define va_start(ap, last) __builtin_va_start(ap, last)
#define va_arg(ap, type) __builtin_va_arg(ap, type)
#define va_end(ap) __builtin_va_end(ap)
#define NULL ((void *)0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NORETURN __attribute__((noreturn))
#define PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- CPU ---- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
    u8 v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline u16 inw(u16 port)
{
    u16 v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline u32 inl(u16 port)
{
    u32 v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline u32 mmio_read32(unsigned long addr) { return *(volatile u32 *)addr; }
static inline void mmio_write32(unsigned long addr, u32 v) { *(volatile u32 *)addr = v; }
static inline u8 mmio_read8(unsigned long addr) { return *(volatile u8 *)addr; }
static inline void mmio_write8(unsigned long addr, u8 v) { *(volatile u8 *)addr = v; }
static inline u16 mmio_read16(unsigned long addr) { return *(volatile u16 *)addr; }
static inline void mmio_write16(unsigned long addr, u16 v) { *(volatile u16 *)addr = v; }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
/* STI's one-instruction interrupt shadow makes "sti; hlt" atomic: an interrupt
 * that is already pending wakes the HLT rather than slipping in before it. */
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline void pause(void) { __asm__ volatile("pause" ::: "memory"); }
static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}
static inline u64 rdmsr(u32 msr)
{
    u32 lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((u64)hi << 32) | lo;
}
static inline void wrmsr(u32 msr, u64 v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}
static inline void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
static inline unsigned long read_flags(void)
{
    unsigned long f;
    __asm__ volatile("pushfq; popq %0" : "=r"(f));
    return f;
}
#define EFLAGS_IF 0x200
static inline u32 atomic_xchg(volatile u32 *p, u32 v)
{
    __asm__ volatile("xchgl %0, %1" : "+r"(v), "+m"(*p) : : "memory");
    return v;
}
static inline void atomic_inc(volatile u32 *p) { __asm__ volatile("lock incl %0" : "+m"(*p) : : "memory"); }

/* n / d, and n % d in *rem if rem is not NULL. */
u64 div64_32(u64 n, u32 d, u32 *rem);

/* ---- memory / strings ---- */
void *memcpy(void *dst, const void *src, u32 n);
void *memset(void *dst, int c, u32 n);
u32 strlen(const char *s);
int strncmp(const char *a, const char *b, u32 n);

/* ---- console (COM1, polled) and reporting ---- */
void putchar(char c);
void puts(const char *s);
int printf(const char *fmt, ...) PRINTF(1, 2);
int vsnprintf(char *buf, u32 size, const char *fmt, va_list ap);
int snprintf(char *buf, u32 size, const char *fmt, ...) PRINTF(3, 4);

/* Words NAME=VALUE of the guest's command line (Multiboot), e.g. with
 * "mode=kernel cpus=2" opt("cpus") returns "2", NULL if absent. The value
 * lives in one of a few rotating buffers: copy it to keep it long. */
const char *opt(const char *name);
extern const char *irqchip_mode;  /* opt("mode"), or "?" */

/* isa-debug-exit (port 0xf4): kvmini exits with status (code << 1) | 1. */
#define EXIT_PASS 0  /* status 1 */
#define EXIT_FAIL 1  /* status 3 */
#define EXIT_SKIP 2  /* status 5: the guest does not apply here (says why) */
void NORETURN exit(u32 code);

/* Checks: each prints "  ok: ..." or "  FAIL: ...", and counts failures.
 * finish() prints "RESULT: PASS" or "RESULT: FAIL (n of m checks failed)"
 * and exits accordingly; skip() prints "RESULT: SKIP: why" and exits 2. */
void test_start(const char *name, const char *what);
int check(int ok, const char *fmt, ...) PRINTF(2, 3);
void note(const char *fmt, ...) PRINTF(1, 2);
void NORETURN finish(void);
void NORETURN skip(const char *fmt, ...) PRINTF(1, 2);
void NORETURN fail_now(const char *fmt, ...) PRINTF(1, 2);
/* A check that cannot be observed in this configuration (says why): printed
 * as "  skip: ...", counted and named in the RESULT line, never a failure. */
void skip_check(const char *fmt, ...) PRINTF(1, 2);
extern u32 checks_failed;

/* The local APIC is KVM's (irqchip modes kernel and split) rather than
 * kvmini's own (user). */
int lapic_is_kvms(void);
/* Whether delivering an interrupt sets its ISR bit (SDM vol. 3A 11.8.4).
 * Probed once with a self-IPI. This project's software-KVM hosts deliver
 * without ever setting ISR (as if every vector were auto-EOI), so nesting,
 * EOI and remote-IRR behaviour cannot be observed through KVM's LAPIC. */
int lapic_keeps_isr(void);
/* NULL if checks that depend on the LAPIC's ISR can run here; otherwise the
 * reason they are skipped. They always run with kvmini's own LAPIC. */
const char *isr_checks_blocked(void);

/* ---- interrupts ---- */
struct frame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax;  /* isr_common */
    u64 vector, error;
    u64 rip, cs, rflags, rsp, ss;  /* pushed by the CPU (SDM 6.14.2) */
};
typedef void (*handler_t)(struct frame *f);
void set_handler(u8 vector, handler_t h);
handler_t set_handler_get(u8 vector, handler_t h);  /* returns the previous one */
/* Fault recovery: while fault_fixup_rip is set, an exception resumes there
 * and records its vector in fault_vector. */
extern volatile u64 fault_fixup_rip;
extern volatile s32 fault_vector;
extern volatile u64 fault_error;  /* the error code pushed, 0 if none */
/* wrmsr/rdmsr that report #GP instead of failing the test. */
int wrmsr_safe(u32 msr, u64 v);
int rdmsr_safe(u32 msr, u64 *v);
/* Counts of interrupts that no handler claimed, by vector (not fatal for
 * vectors >= 32 until the test looks; exceptions are fatal). */
extern volatile u32 unexpected_count[256];
u32 unexpected_total(void);

/* ---- time (TSC; frequency from kvmclock, else PIT channel 2) ---- */
extern u32 tsc_khz;
extern const char *tsc_source;
u64 us_to_tsc(u32 us);
u32 tsc_to_us(u64 cycles);
void udelay(u32 us);  /* busy; keep short */
/* Waits, interrupts enabled, until *p >= target or `us` microseconds pass.
 * Returns 1 if reached. Restores IF=0 on return. */
int wait_until_ge(volatile u32 *p, u32 target, u32 us);
/* Same, with the interrupt flag left as it is (NMIs, other CPUs). */
int spin_until_ge(volatile u32 *p, u32 target, u32 us);
/* Same, but sleeps with HLT between checks. Should the interrupts stop
 * coming, a LAPIC timer one-shot (vector 0xef) ends the wait at its deadline
 * while the test leaves the LAPIC timer masked; otherwise it polls. */
int hlt_until_ge(volatile u32 *p, u32 target, u32 us);
/* Sleeps in HLT, interrupts enabled, for `us` microseconds (same watchdog). */
void hlt_for(u32 us);

/* Interrupts enabled for `us` microseconds (busy), then disabled again:
 * "nothing more arrives" windows. */
void sti_delay(u32 us);

/* ---- pc-testdev interrupt lines (QEMU pc-testdev, kvmini devices/test) ---- */
#define TESTDEV_IRQ_BASE 0x2000
static inline void testdev_line(u32 line, int level) { outb(TESTDEV_IRQ_BASE + line, level ? 1 : 0); }

/* ---- CPUs ---- */
u32 this_cpu(void);                   /* LAPIC ID */
extern volatile u32 cpus_online;      /* bit per APIC ID */
u32 fw_cfg_cpus(void);                /* fw_cfg NB_CPUS, 0 if no fw_cfg */
u64 fw_cfg_ram_size(void);
int fw_cfg_present(void);
/* Starts the AP with this APIC ID (INIT, SIPI, SIPI); 1 if it came up. */
int start_ap(u32 apic_id);
/* Runs fn on an AP (which idles in "sti; hlt") and does not wait. */
void ap_call(u32 apic_id, void (*fn)(void));
extern volatile u32 ap_calls_done[MAX_CPUS];
extern volatile u32 ap_starts[MAX_CPUS];  /* times each AP ran the trampoline */
#define VEC_AP_WAKE 0xf0
#define VEC_LAPIC_SPURIOUS 0xff
extern volatile u32 spurious_count;  /* LAPIC spurious interrupts (SVR vector) */

/* ---- local APIC (Intel SDM vol. 3A chapter 11; xAPIC MMIO, 11.4.1) ---- */
#define APIC_ID 0x020        /* 11.4.6: ID in bits 31:24 */
#define APIC_VERSION 0x030   /* 11.4.8: version 7:0, max LVT entry 23:16 */
#define APIC_TPR 0x080       /* 11.8.3.1 */
#define APIC_APR 0x090
#define APIC_PPR 0x0a0       /* 11.8.3.1 */
#define APIC_EOI 0x0b0       /* 11.8.5 */
#define APIC_LDR 0x0d0       /* 11.6.2.2: logical ID in bits 31:24 */
#define APIC_DFR 0x0e0       /* 11.6.2.2: model in 31:28, 0xF flat, 0x0 cluster */
#define APIC_SVR 0x0f0       /* 11.9: bit 8 software enable, 7:0 spurious vector */
#define APIC_ISR 0x100       /* 11.8.4: 8 registers, 0x10 apart */
#define APIC_TMR 0x180
#define APIC_IRR 0x200
#define APIC_ESR 0x280       /* 11.5.3 */
#define APIC_ICR_LO 0x300    /* 11.6.1 */
#define APIC_ICR_HI 0x310
#define APIC_LVT_TIMER 0x320 /* 11.5.1 */
#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_LVT_ERROR 0x370
#define APIC_TIMER_INIT 0x380 /* 11.5.4 */
#define APIC_TIMER_CUR 0x390
#define APIC_TIMER_DIV 0x3e0  /* 11.5.4 figure 11-10: 0xB = divide by 1 */

#define APIC_SVR_ENABLE 0x100
#define APIC_LVT_MASKED (1u << 16)
#define APIC_LVT_LEVEL (1u << 15)         /* trigger mode (LINT0/1 only) */
#define APIC_LVT_DELIVERY_PENDING (1u << 12)
#define APIC_LVT_EXTINT (7u << 8)
#define APIC_LVT_NMI (4u << 8)
#define APIC_TIMER_ONESHOT (0u << 17)     /* 11.5.4: timer mode bits 18:17 */
#define APIC_TIMER_PERIODIC (1u << 17)
#define APIC_TIMER_TSC_DEADLINE (2u << 17)
#define APIC_TIMER_DIV_1 0xb

/* ICR low (11.6.1, figure 11-12). */
#define ICR_FIXED (0u << 8)
#define ICR_LOWEST (1u << 8)
#define ICR_NMI (4u << 8)
#define ICR_INIT (5u << 8)
#define ICR_STARTUP (6u << 8)
#define ICR_LOGICAL (1u << 11)
#define ICR_BUSY (1u << 12)               /* delivery status: send pending */
#define ICR_ASSERT (1u << 14)
#define ICR_LEVEL (1u << 15)
#define ICR_SELF (1u << 18)               /* destination shorthand 01 */
#define ICR_ALL_INCL (2u << 18)
#define ICR_ALL_EXCL (3u << 18)

#define MSR_IA32_APIC_BASE 0x1b           /* 11.4.4 */
#define MSR_IA32_TSC_DEADLINE 0x6e0       /* 11.5.4.1 */

u32 lapic_read(u32 reg);
void lapic_write(u32 reg, u32 v);
void lapic_enable(void);                  /* SVR: enabled, spurious vector 0xff; TPR 0 */
void lapic_eoi(void);
void lapic_ipi(u32 dest, u32 icr_lo);     /* waits for the ICR to be idle */
int lapic_isr(u8 vector);
int lapic_irr(u8 vector);
int lapic_tmr(u8 vector);
u32 lapic_isr_count(void);                /* vectors in service, all 256 */

/* ---- I/O APIC (Intel 82093AA datasheet, section 3) ---- */
#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN 0x10
#define IOAPIC_REG_ID 0x00
#define IOAPIC_REG_VER 0x01               /* 3.2.2: version 7:0, max redirection entry 23:16 */
#define IOAPIC_REG_REDTBL 0x10            /* 3.2.4: entry n at 0x10 + 2n (low), +1 (high) */
#define IOAPIC_FIXED (0u << 8)
#define IOAPIC_LOWEST (1u << 8)
#define IOAPIC_LOGICAL (1u << 11)         /* destination mode */
#define IOAPIC_DELIVS (1u << 12)          /* delivery status (read only) */
#define IOAPIC_ACTIVE_LOW (1u << 13)
#define IOAPIC_REMOTE_IRR (1u << 14)      /* read only */
#define IOAPIC_LEVEL (1u << 15)
#define IOAPIC_MASKED (1u << 16)
u32 ioapic_read(u32 reg);
void ioapic_write(u32 reg, u32 v);
/* Programs pin `pin` (low word `lo`, destination `dest` in bits 63:56). */
void ioapic_route(u32 pin, u32 lo, u32 dest);
u32 ioapic_entry_lo(u32 pin);
void ioapic_mask(u32 pin, int masked);
void ioapic_mask_all(void);

/* ---- 8259A pair (Intel 8259A datasheet: ICW1-4, OCW1-3) ---- */
#define PIC_MASTER_CMD 0x20
#define PIC_MASTER_DATA 0x21
#define PIC_SLAVE_CMD 0xa0
#define PIC_SLAVE_DATA 0xa1
#define PIC_ELCR1 0x4d0                   /* edge/level control (PIIX/ICH ELCR), IRQ 0-7 */
#define PIC_ELCR2 0x4d1                   /* IRQ 8-15 */
#define PIC_MASTER_BASE 0x20              /* vectors 0x20-0x27 */
#define PIC_SLAVE_BASE 0x28               /* vectors 0x28-0x2f */
#define OCW2_EOI 0x20                     /* non-specific EOI */
#define OCW2_SPECIFIC_EOI 0x60            /* | level */
#define OCW2_ROTATE_EOI 0xa0              /* rotate on non-specific EOI */
#define OCW2_SET_PRIORITY 0xc0            /* | level: that level becomes the lowest */
#define OCW3_READ_IRR 0x0a
#define OCW3_READ_ISR 0x0b
#define OCW3_POLL 0x0c
void pic_init(int auto_eoi);              /* ICW1-4, vectors 0x20/0x28, all masked */
void pic_set_mask(u16 mask);              /* bit n = IRQ n masked */
u16 pic_get_mask(void);
u16 pic_irr(void);
u16 pic_isr(void);
void pic_eoi(u32 irq);                    /* non-specific EOI to the slave (irq >= 8) and the master */
void pic_disable(void);                   /* all masked (leaves LINT0 to nothing) */

/* ---- 8254 PIT (Intel 8254 datasheet) ---- */
#define PIT_HZ 1193182u                   /* input clock, 1.193182 MHz */
#define PIT_CH0 0x40
#define PIT_CH2 0x42
#define PIT_CMD 0x43
#define PIT_PORT_B 0x61                   /* AT port B: bit 0 gate 2, bit 5 OUT2 */
/* Programs channel 0 in `mode` (0-5) with a 16-bit count (0 = 65536), lobyte/hibyte. */
void pit_start(u32 mode, u32 count);
void pit_stop(void);                      /* mode 0 with a maximal count, never reaches IRQ 0 in time */
u32 pit_read_count(void);                 /* counter latch command */
u8 pit_read_status(void);                 /* read-back command: status of channel 0 */

/* ---- PCI configuration space, mechanism #1 (PCI 3.0 3.2.2.3.2; pci.c) ----
 * A function is named by bdf = bus << 8 | device << 3 | function. */
#define PCI_BDF(bus, dev, fn) ((u32)(bus) << 8 | (u32)(dev) << 3 | (u32)(fn))
#define PCI_VENDOR_ID 0x00
#define PCI_COMMAND 0x04                  /* 6.2.2 */
#define PCI_STATUS 0x06                   /* 6.2.3 */
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define PCI_CMD_IO 0x0001
#define PCI_CMD_MEMORY 0x0002
#define PCI_CMD_BUS_MASTER 0x0004
#define PCI_CMD_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT 0x0008
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_CAP_ID_VENDOR 0x09
#define PCI_CAP_ID_MSIX 0x11              /* 6.8.2 */
#define MSIX_CONTROL 2                    /* Message Control, in the capability */
#define MSIX_TABLE 4                      /* Table Offset / BIR */
#define MSIX_PBA 8                        /* PBA Offset / BIR */
#define MSIX_CONTROL_ENABLE 0x8000
#define MSIX_CONTROL_FUNCTION_MASK 0x4000
#define MSIX_ENTRY_SIZE 16                /* address lo, address hi, data, vector control */
#define MSIX_ENTRY_VECTOR_MASKED 1
u32 pci_read32(u32 bdf, u32 off);
u16 pci_read16(u32 bdf, u32 off);
u8 pci_read8(u32 bdf, u32 off);
void pci_write32(u32 bdf, u32 off, u32 v);
void pci_write16(u32 bdf, u32 off, u16 v);
/* Bus 0 (functions 1-7 only of multi-function devices): 1 and *bdf if found. */
int pci_find(u16 vendor, u16 device, u32 *bdf);
/* The first capability `id` after the one at `after` (0: from the start of
 * the list); 0 if none. The walk stops after 48 entries (a looping list). */
u8 pci_find_cap(u32 bdf, u8 id, u8 after);
/* The address a BAR decodes (both halves of a 64-bit memory BAR). */
u64 pci_bar(u32 bdf, u32 bar);

/* ---- 16550A UART on COM1 ---- */
#define COM1 0x3f8
#define COM1_IRQ 4

/* The test's entry point, called on the BSP with the runtime set up and
 * interrupts disabled. */
void test_main(void);
