/* The 8254 PIT channel 0 on IRQ 0: modes 0 (interrupt on terminal count),
 * 2 (rate generator) and 3 (square wave), status read-back and counter latch,
 * tick counts over a TSC-timed window, and ISA IRQ 0 arriving on IOAPIC
 * pin 2 (the interrupt source override every PC chipset has).
 *
 * Reference: Intel 8254 datasheet (control word, modes 0/2/3, counter latch
 * and read-back commands, status byte: OUT in bit 7, mode in bits 3:1);
 * input clock 1.193182 MHz; MP spec 1.4 / ACPI MADT: ISA IRQ 0 -> GSI 2. */
#include "runtime.h"

#define V_PIC_IRQ0 (PIC_MASTER_BASE + 0)
#define V_IOAPIC_PIN2 0x48
#define V_IOAPIC_PIN0 0x49
#define COUNT_1KHZ 1193  /* 1.193182 MHz / 1193 = 1000.15 Hz */

static volatile u32 ticks, ticks_pin2, ticks_pin0;
static volatile u64 first_tick_tsc;

static void pic_tick(struct frame *f)
{
    (void)f;
    if (!ticks) first_tick_tsc = rdtsc();
    ticks++;
    pic_eoi(0);
}

static void ioapic_tick(struct frame *f)
{
    if (f->vector == V_IOAPIC_PIN2) ticks_pin2++;
    else ticks_pin0++;
    lapic_eoi();
}

/* Interrupts counted in a window of `ms` milliseconds of TSC time, sleeping
 * in HLT between them (the PIT keeps waking us). */
static u32 ticks_in_window(u32 ms)
{
    u32 start = ticks;
    hlt_for(ms * 1000);
    return ticks - start;
}

/* Stops the PIT and waits until no IRQ 0 has arrived for 10 ms: the stop's
 * own terminal count and ticks still being reinjected may come late on a
 * loaded host (KVM injects PIT ticks from a worker thread). */
static void quiesce(void)
{
    pit_stop();
    for (u32 i = 0, quiet = 0; i < 50 && quiet < 2; i++) {
        u32 before = ticks + ticks_pin2;
        sti_delay(5000);
        quiet = ticks + ticks_pin2 == before ? quiet + 1 : 0;
    }
    ticks = 0;
}

static void test_periodic(u32 mode)
{
    quiesce();
    pit_start(mode, COUNT_1KHZ);
    u8 st = pit_read_status();
    check(((st >> 1) & 3) == (mode & 3) && ((st >> 4) & 3) == 3,
          "mode %u: read-back status %#x says mode %u, lobyte/hibyte access", mode, st, (st >> 1) & 7);
    u32 c1 = pit_read_count();
    udelay(200);
    u32 c2 = pit_read_count();
    check(c1 <= COUNT_1KHZ && c2 <= COUNT_1KHZ && c1 != c2, "mode %u: the latched count runs (%u, then %u)", mode, c1,
          c2);
    if (!hlt_until_ge(&ticks, 1, 100000)) {
        check(0, "mode %u: IRQ 0 arrives at 1 kHz", mode);
        return;
    }
    const u32 window_ms = 100;
    u32 n = ticks_in_window(window_ms);
    check(n >= window_ms * 6 / 10 && n <= window_ms * 14 / 10,
          "mode %u at 1 kHz: %u ticks in %u ms (%u expected, +-40%%)", mode, n, window_ms, window_ms);
}

static void test_mode0(void)
{
    quiesce();
    const u32 us = 5000, count = PIT_HZ / 200;  /* 5 ms */
    u64 armed = rdtsc();
    pit_start(0, count);
    u8 st = pit_read_status();
    check(!(st & 0x80) && ((st >> 1) & 7) == 0, "mode 0: OUT low while counting (status %#x)", st);
    wait_until_ge(&ticks, 1, 200000);
    check(ticks == 1, "mode 0: IRQ 0 at terminal count (count %u)", ticks);
    if (ticks) {
        u32 after = tsc_to_us(first_tick_tsc - armed);
        check(after >= us * 9 / 10, "mode 0: not before its time (%u us for %u)", after, us);
    }
    st = pit_read_status();
    check((st & 0x80) != 0, "mode 0: OUT high after terminal count (status %#x)", st);
    sti_delay(20000);
    check(ticks == 1, "mode 0: one interrupt only (count %u after 20 ms more)", ticks);
}

static void test_ioapic_pin2(void)
{
    quiesce();
    pic_set_mask(0xffff);
    lapic_write(APIC_LVT_LINT0, APIC_LVT_MASKED | APIC_LVT_EXTINT);
    ioapic_route(2, IOAPIC_FIXED | V_IOAPIC_PIN2, this_cpu());
    ioapic_route(0, IOAPIC_FIXED | V_IOAPIC_PIN0, this_cpu());
    pit_start(2, COUNT_1KHZ);
    int got = hlt_until_ge(&ticks_pin2, 10, 200000);
    pit_stop();
    sti_delay(2000);
    ioapic_mask_all();
    check(got, "IRQ 0 reaches IOAPIC pin 2 (%u ticks on vector 0x48)", ticks_pin2);
    check(ticks_pin0 == 0, "and not pin 0 (%u ticks)", ticks_pin0);
    check(ticks == 0, "nor the masked 8259A path (%u ticks)", ticks);
}

void test_main(void)
{
    test_start("pit", "8254: modes 2, 3 and 0 on IRQ 0, read-back, 1 kHz tick count, IRQ 0 on IOAPIC pin 2");
    ioapic_mask_all();
    lapic_write(APIC_LVT_LINT0, APIC_LVT_EXTINT);  /* virtual wire: the 8259A through LINT0 */
    set_handler(V_PIC_IRQ0, pic_tick);
    set_handler(V_IOAPIC_PIN2, ioapic_tick);
    set_handler(V_IOAPIC_PIN0, ioapic_tick);
    pic_set_mask((u16)~1u);
    test_periodic(2);
    test_periodic(3);
    test_mode0();
    test_ioapic_pin2();
    pit_stop();
    pic_set_mask(0xffff);
}
