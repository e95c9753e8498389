/* The runtime's core: start-up, console, printf, reporting, IDT and the
 * interrupt dispatcher, time, fw_cfg. See runtime.h. */
#include "runtime.h"

/* ---------------------------------------------------------------- strings */

void *memcpy(void *dst, const void *src, u32 n)
{
    u8 *d = dst;
    const u8 *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, u32 n)
{
    u8 *d = dst;
    while (n--) *d++ = (u8)c;
    return dst;
}

u32 strlen(const char *s)
{
    u32 n = 0;
    while (s[n]) n++;
    return n;
}

int strncmp(const char *a, const char *b, u32 n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b) return (u8)*a - (u8)*b;
        if (!*a) return 0;
    }
    return 0;
}

u64 div64_32(u64 n, u32 d, u32 *rem)
{
    if (rem) *rem = (u32)(n % d);
    return n / d;
}

/* ---------------------------------------------------------------- console */

/* PC16550D: LSR (base + 5) bit 5 THRE: with FIFOs enabled (FCR bit 0) the TX
 * FIFO is empty and takes 16 bytes (datasheet 8.4, 8.5). */
#define UART_LSR 5
#define UART_LSR_THRE 0x20
#define UART_TX_FIFO 16

static volatile u32 print_lock;
static volatile u32 print_owner = 0xffffffff;

static void lock_console(int *nested)
{
    const u32 me = this_cpu();
    if (print_owner == me) {  /* an exception while printing */
        *nested = 1;
        return;
    }
    *nested = 0;
    while (atomic_xchg(&print_lock, 1)) pause();
    print_owner = me;
}

static void unlock_console(int nested)
{
    if (nested) return;
    print_owner = 0xffffffff;
    barrier();
    print_lock = 0;
}

static void wait_thre(void)
{
    for (u32 i = 0; i < 100000 && !(inb(COM1 + UART_LSR) & UART_LSR_THRE); i++) pause();
}

/* Up to 16 bytes per THRE (one REP OUTSB: one exit to the VMM). */
static void serial_write(const char *s, u32 n)
{
    while (n) {
        unsigned long chunk = n < UART_TX_FIFO ? n : UART_TX_FIFO;
        wait_thre();
        __asm__ volatile("rep outsb" : "+S"(s), "+c"(chunk) : "d"((u16)COM1) : "memory");
        n -= n < UART_TX_FIFO ? n : UART_TX_FIFO;
    }
}

static void serial_init(void)
{
    outb(COM1 + 1, 0x00);  /* IER: no interrupts */
    outb(COM1 + 3, 0x80);  /* LCR: DLAB */
    outb(COM1 + 0, 0x01);  /* DLL: 115200 baud */
    outb(COM1 + 1, 0x00);  /* DLM */
    outb(COM1 + 3, 0x03);  /* LCR: 8N1 */
    outb(COM1 + 2, 0x07);  /* FCR: FIFOs on, both cleared */
    outb(COM1 + 4, 0x03);  /* MCR: DTR, RTS; OUT2 off: no IRQ 4 */
}

void putchar(char c)
{
    int nested;
    lock_console(&nested);
    serial_write(&c, 1);
    unlock_console(nested);
}

void puts(const char *s)
{
    int nested;
    lock_console(&nested);
    serial_write(s, strlen(s));
    unlock_console(nested);
}

/* ---------------------------------------------------------------- printf */

struct out {
    char *buf;
    u32 size, len;
};

static void emit(struct out *o, char c)
{
    if (o->len + 1 < o->size) o->buf[o->len] = c;
    o->len++;
}

static void emit_number(struct out *o, u64 v, u32 base, int upper, int neg, u32 width, char pad, int left)
{
    char tmp[24];
    u32 n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        u32 r;
        v = div64_32(v, base, &r);
        tmp[n++] = digits[r];
    } while (v);
    if (neg) {
        if (pad == '0') {
            emit(o, '-');
        } else {
            tmp[n++] = '-';
        }
        if (width) width--;
    }
    if (!left)
        for (u32 i = n; i < width; i++) emit(o, pad);
    while (n) emit(o, tmp[--n]);
    if (left)
        for (u32 i = n; i < width; i++) emit(o, ' ');
}

int vsnprintf(char *buf, u32 size, const char *fmt, va_list ap)
{
    struct out o = {buf, size, 0};
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(&o, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int left = 0, longs = 0, alt = 0;
        u32 width = 0;
        for (;; fmt++) {
            if (*fmt == '0') pad = '0';
            else if (*fmt == '-') left = 1;
            else if (*fmt == '#') alt = 1;
            else break;
        }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (u32)(*fmt++ - '0');
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            s64 v = longs ? va_arg(ap, s64) : va_arg(ap, s32);
            emit_number(&o, v < 0 ? (u64)-v : (u64)v, 10, 0, v < 0, width, pad, left);
            break;
        }
        case 'u':
            emit_number(&o, longs ? va_arg(ap, u64) : va_arg(ap, u32), 10, 0, 0, width, pad, left);
            break;
        case 'x':
        case 'X':
            if (alt) {
                emit(&o, '0');
                emit(&o, 'x');
            }
            emit_number(&o, longs ? va_arg(ap, u64) : va_arg(ap, u32), 16, *fmt == 'X', 0, width, pad, left);
            break;
        case 'p':
            emit(&o, '0');
            emit(&o, 'x');
            emit_number(&o, (unsigned long)va_arg(ap, void *), 16, 0, 0, 8, '0', 0);
            break;
        case 'c':
            emit(&o, (char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s) s = "(null)";
            u32 n = strlen(s);
            if (!left)
                for (u32 i = n; i < width; i++) emit(&o, ' ');
            while (*s) emit(&o, *s++);
            if (left)
                for (u32 i = n; i < width; i++) emit(&o, ' ');
            break;
        }
        case '%':
            emit(&o, '%');
            break;
        case 0:
            fmt--;
            break;
        default:
            emit(&o, '%');
            emit(&o, *fmt);
            break;
        }
    }
    if (size) buf[o.len < size ? o.len : size - 1] = 0;
    return (int)o.len;
}

int snprintf(char *buf, u32 size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

static void vprint(const char *fmt, va_list ap)
{
    char buf[400];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n > (int)sizeof buf - 1) n = sizeof buf - 1;
    int nested;
    lock_console(&nested);
    serial_write(buf, (u32)n);
    unlock_console(nested);
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint(fmt, ap);
    va_end(ap);
    return 0;
}

/* ---------------------------------------------------------------- exit and reporting */

#define DEBUG_EXIT_PORT 0xf4

void NORETURN exit(u32 code)
{
    outb(DEBUG_EXIT_PORT, (u8)code);
    /* kvmini stops all vCPUs; should it not, stay here quietly. */
    for (;;) __asm__ volatile("cli; hlt");
}

u32 checks_failed;
static u32 checks_run, checks_skipped;
static const char *test_name = "?";

void test_start(const char *name, const char *what)
{
    test_name = name;
    printf("kvmini test guest '%s' (irqchip %s, TSC %u kHz from %s): %s\n", name, irqchip_mode, tsc_khz,
           tsc_source, what);
}

int check(int ok, const char *fmt, ...)
{
    char buf[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    checks_run++;
    if (!ok) checks_failed++;
    printf("  %s: %s\n", ok ? "ok" : "FAIL", buf);
    return ok;
}

void skip_check(const char *fmt, ...)
{
    char buf[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    checks_skipped++;
    printf("  skip: %s\n", buf);
}

void note(const char *fmt, ...)
{
    char buf[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("  note: %s\n", buf);
}

void NORETURN finish(void)
{
    cli();
    u32 stray = unexpected_total();
    if (stray) check(0, "%u interrupt(s) arrived that no test expected", stray);
    if (!checks_run) {
        printf("RESULT: FAIL (%s ran no checks)\n", test_name);
        exit(EXIT_FAIL);
    }
    if (checks_failed) {
        printf("RESULT: FAIL (%u of %u checks failed%s)\n", checks_failed, checks_run,
               checks_skipped ? ", some skipped" : "");
        exit(EXIT_FAIL);
    }
    if (checks_skipped)
        printf("RESULT: PASS (%u checks, %u skipped)\n", checks_run, checks_skipped);
    else
        printf("RESULT: PASS (%u checks)\n", checks_run);
    exit(EXIT_PASS);
}

void NORETURN skip(const char *fmt, ...)
{
    char buf[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("RESULT: SKIP: %s\n", buf);
    exit(EXIT_SKIP);
}

void NORETURN fail_now(const char *fmt, ...)
{
    char buf[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cli();
    printf("  FAIL: %s\nRESULT: FAIL (%s)\n", buf, buf);
    exit(EXIT_FAIL);
}

/* ---------------------------------------------------------------- command line */

static char cmdline[256];
const char *irqchip_mode = "?";

const char *opt(const char *name)
{
    static char values[8][48];
    static u32 next;
    u32 n = strlen(name);
    for (const char *p = cmdline; *p;) {
        while (*p == ' ') p++;
        if (!strncmp(p, name, n) && p[n] == '=') {
            char *v = values[next++ % ARRAY_SIZE(values)];
            u32 i = 0;
            for (p += n + 1; *p && *p != ' ' && i < sizeof values[0] - 1; p++) v[i++] = *p;
            v[i] = 0;
            return v;
        }
        while (*p && *p != ' ') p++;
    }
    return NULL;
}

/* Multiboot 0.6.96 3.3: info flags bit 2 = cmdline (physical address) valid. */
static void read_cmdline(u32 magic, const u32 *info)
{
    if (magic != 0x2badb002 || !info || !(info[0] & (1u << 2))) return;
    const char *src = (const char *)(unsigned long)info[4];
    u32 i = 0;
    for (; src[i] && i < sizeof cmdline - 1; i++) cmdline[i] = src[i];
    cmdline[i] = 0;
}

/* ---------------------------------------------------------------- IDT and dispatch */

/* SDM 6.14.1, figure 6-8: 64-bit interrupt gate. */
struct gate {
    u16 off_lo, sel;
    u8 ist, type;
    u16 off_mid;
    u32 off_hi, reserved;
} __attribute__((packed));
static struct gate idt[256] __attribute__((aligned(16)));
static struct {
    u16 limit;
    u64 base;
} __attribute__((packed)) idt_desc = {sizeof idt - 1, (u64)idt};

extern char isr_stubs[];
static handler_t handlers[256];
volatile u64 fault_fixup_rip;
volatile s32 fault_vector = -1;
volatile u64 fault_error;
volatile u32 unexpected_count[256];

void set_handler(u8 vector, handler_t h) { handlers[vector] = h; }

handler_t set_handler_get(u8 vector, handler_t h)
{
    handler_t old = handlers[vector];
    handlers[vector] = h;
    return old;
}

u32 unexpected_total(void)
{
    u32 n = 0;
    for (u32 v = 0; v < 256; v++) n += unexpected_count[v];
    return n;
}

static void idt_init(void)
{
    for (u32 v = 0; v < 256; v++) {
        u64 addr = (u64)isr_stubs + 16 * v;
        idt[v].off_lo = (u16)addr;
        idt[v].sel = SEL_CODE64;
        idt[v].ist = 0;
        idt[v].type = 0x8e;  /* present, DPL 0, 64-bit interrupt gate */
        idt[v].off_mid = (u16)(addr >> 16);
        idt[v].off_hi = (u32)(addr >> 32);
        idt[v].reserved = 0;
    }
}

void load_idt(void) { __asm__ volatile("lidt %0" : : "m"(idt_desc)); }

static const char *exception_name(u32 v)
{
    static const char *names[] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
                                  "#NP", "#SS", "#GP", "#PF", "?",   "#MF", "#AC", "#MC", "#XM", "#VE", "#CP"};
    return v < ARRAY_SIZE(names) ? names[v] : "?";
}

static void NORETURN fatal_exception(struct frame *f)
{
    u64 cr0, cr2, cr3, cr4;
    __asm__ volatile("mov %%cr0, %0; mov %%cr2, %1; mov %%cr3, %2" : "=r"(cr0), "=r"(cr2), "=r"(cr3));
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    printf("EXCEPTION: vector %llu (%s) error %#llx on cpu %u\n", f->vector, exception_name((u32)f->vector),
           f->error, this_cpu());
    printf("  RIP=%016llx CS=%04llx RFLAGS=%08llx RSP=%016llx SS=%04llx\n", f->rip, f->cs, f->rflags, f->rsp,
           f->ss);
    printf("  RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n", f->rax, f->rbx, f->rcx, f->rdx);
    printf("  RSI=%016llx RDI=%016llx RBP=%016llx R8=%016llx\n", f->rsi, f->rdi, f->rbp, f->r8);
    printf("  CR0=%08llx CR2=%016llx CR3=%08llx CR4=%08llx\n", cr0, cr2, cr3, cr4);
    printf("RESULT: FAIL (unexpected exception %s in '%s')\n", exception_name((u32)f->vector), test_name);
    exit(EXIT_FAIL);
}

void isr_dispatch(struct frame *f)
{
    const u32 v = (u32)f->vector;
    if (v < 32 && v != 2 && fault_fixup_rip) {
        fault_vector = (s32)v;
        fault_error = f->error;
        f->rip = fault_fixup_rip;
        fault_fixup_rip = 0;
        return;
    }
    if (handlers[v]) {
        handlers[v](f);
        return;
    }
    if (v < 32 && v != 2) fatal_exception(f);
    if (unexpected_count[v]++ == 0) printf("  note: unexpected interrupt vector %#x on cpu %u\n", v, this_cpu());
    /* If the local APIC delivered it, acknowledge it, so that it does not
     * block every lower-priority vector for the rest of the test. */
    if (v >= 16 && v != VEC_LAPIC_SPURIOUS && lapic_isr((u8)v)) lapic_eoi();
}

int wrmsr_safe(u32 msr, u64 v)
{
    fault_vector = -1;
    __asm__ volatile("movq $1f, fault_fixup_rip(%%rip)\n\t"
                     "wrmsr\n"
                     "1:\tmovq $0, fault_fixup_rip(%%rip)"
                     :
                     : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32))
                     : "memory");
    return fault_vector;
}

int rdmsr_safe(u32 msr, u64 *v)
{
    u32 lo = 0, hi = 0;
    fault_vector = -1;
    __asm__ volatile("movq $1f, fault_fixup_rip(%%rip)\n\t"
                     "rdmsr\n"
                     "1:\tmovq $0, fault_fixup_rip(%%rip)"
                     : "+a"(lo), "+d"(hi)
                     : "c"(msr)
                     : "memory");
    *v = ((u64)hi << 32) | lo;
    return fault_vector;
}

/* ---------------------------------------------------------------- LAPIC ISR probe */

#define VEC_ISR_PROBE 0xe0
static volatile u32 probe_isr, probe_runs;
static int isr_probed, isr_kept;

static void isr_probe_handler(struct frame *f)
{
    probe_isr = lapic_isr((u8)f->vector);
    probe_runs++;
    lapic_eoi();
}

int lapic_is_kvms(void) { return !strncmp(irqchip_mode, "kernel", 7) || !strncmp(irqchip_mode, "split", 6); }

int lapic_keeps_isr(void)
{
    if (isr_probed) return isr_kept;
    handler_t old = set_handler_get(VEC_ISR_PROBE, isr_probe_handler);
    lapic_ipi(this_cpu(), ICR_SELF | VEC_ISR_PROBE);
    wait_until_ge(&probe_runs, 1, 100000);
    set_handler(VEC_ISR_PROBE, old);
    isr_probed = 1;
    isr_kept = probe_runs == 1 && probe_isr;
    if (!isr_kept)
        note("this LAPIC delivered a self-IPI %s ISR bit set in the handler",
             probe_runs ? "without its" : "(not even delivered) nor with its");
    return isr_kept;
}

const char *isr_checks_blocked(void)
{
    if (lapic_keeps_isr() || !lapic_is_kvms()) return NULL;
    return "host limitation: KVM's LAPIC here sets no ISR bit on delivery (acts as auto-EOI)";
}

/* ---------------------------------------------------------------- time */

u32 tsc_khz;
const char *tsc_source = "none";

u64 us_to_tsc(u32 us) { return div64_32((u64)us * tsc_khz, 1000, NULL); }
u32 tsc_to_us(u64 cycles) { return (u32)div64_32(cycles * 1000, tsc_khz, NULL); }

void udelay(u32 us)
{
    u64 end = rdtsc() + us_to_tsc(us);
    while (rdtsc() < end) pause();
}

void sti_delay(u32 us)
{
    sti();
    udelay(us);
    cli();
}

int wait_until_ge(volatile u32 *p, u32 target, u32 us)
{
    u64 end = rdtsc() + us_to_tsc(us);
    int ok = 1;
    sti();
    while (*p < target) {
        if (rdtsc() >= end) {
            ok = *p >= target;
            break;
        }
        pause();
    }
    cli();
    return ok;
}

int spin_until_ge(volatile u32 *p, u32 target, u32 us)
{
    u64 end = rdtsc() + us_to_tsc(us);
    while (*p < target)
        if (rdtsc() >= end) return *p >= target;
    return 1;
}

/* The HLT waits below must not hang when the interrupt they wait for never
 * comes (that is what a failing check looks like): while the test does not
 * use the LAPIC timer, a one-shot of it on VEC_WATCHDOG wakes the CPU at the
 * deadline; otherwise they poll. */
#define VEC_WATCHDOG 0xef
static u32 watchdog_rate;  /* LAPIC timer counts per us at divide by 1; 0: unusable */
static int watchdog_probed;

static void watchdog_handler(struct frame *f)
{
    (void)f;
    lapic_eoi();
}

static int watchdog_usable(void)
{
    u32 lvt = lapic_read(APIC_LVT_TIMER);
    if (!(lvt & APIC_LVT_MASKED) && (lvt & 0xff) != VEC_WATCHDOG) return 0;  /* the test's own timer */
    if (!watchdog_probed) {
        watchdog_probed = 1;
        set_handler(VEC_WATCHDOG, watchdog_handler);
        lapic_write(APIC_TIMER_DIV, APIC_TIMER_DIV_1);
        lapic_write(APIC_LVT_TIMER, APIC_LVT_MASKED | VEC_WATCHDOG);
        u64 t0 = rdtsc();
        lapic_write(APIC_TIMER_INIT, 0xffffffff);
        udelay(500);
        u32 cur = lapic_read(APIC_TIMER_CUR);
        u32 us = tsc_to_us(rdtsc() - t0);
        lapic_write(APIC_TIMER_INIT, 0);
        watchdog_rate = us ? (0xffffffff - cur) / us : 0;
    }
    return watchdog_rate != 0;
}

/* Sleeps in HLT until *p >= target (p may be NULL) or the TSC reaches `end`. */
static int idle(volatile u32 *p, u32 target, u64 end)
{
    const int watchdog = watchdog_usable();
    for (;;) {
        cli();
        if (p && *p >= target) break;
        u64 now = rdtsc();
        if (now >= end) break;
        if (!watchdog) {
            sti();
            pause();
            continue;
        }
        u64 left_us = tsc_to_us(end - now) + 1;
        if (left_us > 0xffffffffu / watchdog_rate) left_us = 0xffffffffu / watchdog_rate;
        lapic_write(APIC_TIMER_DIV, APIC_TIMER_DIV_1);
        lapic_write(APIC_LVT_TIMER, APIC_TIMER_ONESHOT | VEC_WATCHDOG);
        lapic_write(APIC_TIMER_INIT, (u32)left_us * watchdog_rate);
        sti_hlt();
    }
    if (watchdog) {
        lapic_write(APIC_LVT_TIMER, APIC_LVT_MASKED | VEC_WATCHDOG);
        lapic_write(APIC_TIMER_INIT, 0);
    }
    cli();
    return p && *p >= target;
}

int hlt_until_ge(volatile u32 *p, u32 target, u32 us) { return idle(p, target, rdtsc() + us_to_tsc(us)); }

void hlt_for(u32 us) { idle(NULL, 0, rdtsc() + us_to_tsc(us)); }

/* KVM's paravirtual clock (Documentation/virt/kvm/x86/msr.rst,
 * MSR_KVM_SYSTEM_TIME_NEW): KVM writes a pvclock_vcpu_time_info whose
 * tsc_to_system_mul/tsc_shift convert TSC ticks to ns, i.e. give the TSC
 * frequency independently of any emulated timer. */
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
struct pvclock {
    u32 version, pad0;
    u64 tsc_timestamp, system_time;
    u32 tsc_to_system_mul;
    s8 tsc_shift;
    u8 flags, pad[2];
} __attribute__((packed));
static struct pvclock pvclock __attribute__((aligned(64)));

static int kvmclock_khz(void)
{
    u32 a, b, c, d;
    cpuid(0x40000000, 0, &a, &b, &c, &d);
    if (b != 0x4b4d564b || c != 0x564b4d56 || d != 0x4d) return 0;  /* "KVMKVMKVM\0\0\0" */
    if (wrmsr_safe(MSR_KVM_SYSTEM_TIME_NEW, (u64)&pvclock | 1) >= 0) return 0;
    for (u32 i = 0; i < 1000 && !(*(volatile u32 *)&pvclock.tsc_to_system_mul); i++) pause();
    u32 mul = *(volatile u32 *)&pvclock.tsc_to_system_mul;
    s8 shift = *(volatile s8 *)&pvclock.tsc_shift;
    wrmsr_safe(MSR_KVM_SYSTEM_TIME_NEW, 0);
    if (!mul) return 0;
    /* ns = ((tsc << shift) * mul) >> 32, so kHz = 10^6 * 2^32 / mul / 2^shift. */
    u64 khz = div64_32(1000000ull << 32, mul, NULL);
    khz = shift >= 0 ? khz >> shift : khz << -shift;
    tsc_khz = (u32)khz;
    return tsc_khz != 0;
}

/* Fallback: PIT channel 2 in mode 0 counts 10 ms (8254 datasheet, mode 0:
 * OUT goes high at terminal count; AT port B 0x61 bit 0 gates channel 2 and
 * bit 5 reads OUT2). */
static int pit_khz(void)
{
    const u32 count = PIT_HZ / 100;
    outb(PIT_PORT_B, (inb(PIT_PORT_B) & ~0x03) | 0x01);
    outb(PIT_CMD, 0xb0);  /* channel 2, lobyte/hibyte, mode 0, binary */
    outb(PIT_CH2, (u8)count);
    outb(PIT_CH2, (u8)(count >> 8));
    u64 t0 = rdtsc();
    u32 i = 0;
    while (!(inb(PIT_PORT_B) & 0x20) && ++i < 1000000) pause();
    u64 t1 = rdtsc();
    if (i >= 1000000) return 0;
    tsc_khz = (u32)div64_32(t1 - t0, 10, NULL);
    return tsc_khz != 0;
}

static void time_init(void)
{
    if (kvmclock_khz()) {
        tsc_source = "kvmclock";
    } else if (pit_khz()) {
        tsc_source = "PIT channel 2";
    } else {
        tsc_khz = 2000000;
        tsc_source = "a guess (no kvmclock, no PIT)";
    }
}

/* ---------------------------------------------------------------- fw_cfg */

/* QEMU docs/specs/fw_cfg.rst: 16-bit selector at 0x510, data bytes at 0x511. */
static void fw_cfg_read(u16 key, void *buf, u32 n)
{
    outw(0x510, key);
    u8 *b = buf;
    while (n--) *b++ = inb(0x511);
}

int fw_cfg_present(void)
{
    char sig[4];
    fw_cfg_read(0x0000, sig, 4);
    return sig[0] == 'Q' && sig[1] == 'E' && sig[2] == 'M' && sig[3] == 'U';
}

u32 fw_cfg_cpus(void)
{
    u16 n = 0;
    if (!fw_cfg_present()) return 0;
    fw_cfg_read(0x0005, &n, 2);
    return n;
}

u64 fw_cfg_ram_size(void)
{
    u64 n = 0;
    if (!fw_cfg_present()) return 0;
    fw_cfg_read(0x0003, &n, 8);
    return n;
}

/* ---------------------------------------------------------------- start-up */

void lapic_spurious_handler(struct frame *f);
void ap_wake_handler(struct frame *f);
volatile u32 cpus_online;

void NORETURN runtime_start(u64 magic, const u32 *info)
{
    serial_init();
    idt_init();
    load_idt();
    set_handler(VEC_LAPIC_SPURIOUS, lapic_spurious_handler);
    set_handler(VEC_AP_WAKE, ap_wake_handler);
    read_cmdline((u32)magic, info);
    const char *mode = opt("mode");
    if (mode) irqchip_mode = mode;
    if (magic != 0x2badb002) printf("note: entered with EAX=%#llx, not the Multiboot magic\n", magic);
    pic_init(0);  /* a known state: vectors 0x20-0x2f, every IRQ masked */
    lapic_enable();
    cpus_online = 1u << this_cpu();
    time_init();
    test_main();
    finish();
}
