/* The local APIC timer: its count rate and divider, one-shot, periodic and
 * TSC-deadline modes, masking and stopping. Time is measured with the TSC,
 * whose rate comes from kvmclock (independent of any emulated timer).
 *
 * Reference: Intel SDM vol. 3A 11.5.4 "APIC Timer" (divide configuration,
 * initial and current count, one-shot and periodic: the current count
 * reloads from the initial count; writing 0 stops the timer), 11.5.4.1
 * "TSC-Deadline Mode" (CPUID.01H:ECX[24]; IA32_TSC_DEADLINE 0x6E0; it fires
 * when the TSC reaches the deadline, then reads 0; writing 0 disarms it;
 * the initial-count register is ignored in this mode). */
#include "runtime.h"

#define V_TIMER 0x70

static volatile u32 ticks;
static volatile u64 tsc_at[32];

static void timer_handler(struct frame *f)
{
    (void)f;
    if (ticks < ARRAY_SIZE(tsc_at)) tsc_at[ticks] = rdtsc();
    ticks++;
    lapic_eoi();
}

static void timer_off(void)
{
    lapic_write(APIC_LVT_TIMER, APIC_LVT_MASKED | V_TIMER);
    lapic_write(APIC_TIMER_INIT, 0);
}

/* Timer counts per microsecond with divide configuration `div`. */
static u32 measure_rate(u32 div, u32 *elapsed_us)
{
    timer_off();
    lapic_write(APIC_TIMER_DIV, div);
    lapic_write(APIC_LVT_TIMER, APIC_LVT_MASKED | APIC_TIMER_ONESHOT | V_TIMER);
    u64 t0 = rdtsc();
    lapic_write(APIC_TIMER_INIT, 0xffffffff);
    udelay(2000);
    u32 cur = lapic_read(APIC_TIMER_CUR);
    u64 t1 = rdtsc();
    timer_off();
    *elapsed_us = tsc_to_us(t1 - t0);
    return *elapsed_us ? (0xffffffff - cur) / *elapsed_us : 0;
}

static u32 rate;  /* counts per us at divide-by-1 */

static void test_rate(void)
{
    u32 us1, us2;
    rate = measure_rate(APIC_TIMER_DIV_1, &us1);
    check(rate > 0, "the current count runs down (%u counts/us at divide by 1, over %u us)", rate, us1);
    if (!rate) rate = 1;
    u32 rate2 = measure_rate(0x0, &us2);  /* divide by 2 (figure 11-10: 0000b) */
    check(rate2 * 10 >= rate * 4 && rate2 * 10 <= rate * 6, "divide by 2 halves it (%u vs %u counts/us)", rate2,
          rate);
    lapic_write(APIC_TIMER_DIV, APIC_TIMER_DIV_1);
}

static void test_oneshot(void)
{
    ticks = 0;
    const u32 us = 1000;
    lapic_write(APIC_LVT_TIMER, APIC_TIMER_ONESHOT | V_TIMER);
    u64 armed = rdtsc();
    lapic_write(APIC_TIMER_INIT, rate * us);
    wait_until_ge(&ticks, 1, 200000);
    check(ticks == 1, "one-shot: fires (count %u)", ticks);
    if (ticks) {
        u32 after = tsc_to_us(tsc_at[0] - armed);
        check(after >= us * 9 / 10, "one-shot: not before its time (%u us for %u)", after, us);
        note("one-shot of %u us fired after %u us", us, after);
    }
    check(lapic_read(APIC_TIMER_CUR) == 0, "one-shot: current count 0 after it fired (%u)",
          lapic_read(APIC_TIMER_CUR));
    sti_delay(5000);
    check(ticks == 1, "one-shot: fires once only (count %u after 5 ms more)", ticks);
    timer_off();
}

static void test_periodic(void)
{
    ticks = 0;
    const u32 period_us = 1000;
    lapic_write(APIC_LVT_TIMER, APIC_TIMER_PERIODIC | V_TIMER);
    lapic_write(APIC_TIMER_INIT, rate * period_us);
    int got = hlt_until_ge(&ticks, 11, 500000);
    u32 cur = lapic_read(APIC_TIMER_CUR);
    check(got, "periodic: 11 interrupts arrive (got %u)", ticks);
    if (got) {
        /* Never early; late only within reason: a CPU slow to take the
         * interrupts sees periods coalesce (the vector is still pending in
         * IRR), which the SDM allows, so the upper bound only catches a
         * period that is grossly wrong. */
        u32 ten = tsc_to_us(tsc_at[10] - tsc_at[0]);
        check(ten >= 10 * period_us * 8 / 10 && ten <= 10 * period_us * 20,
              "periodic: 10 periods of %u us take %u us (0.8x-20x allowed)", period_us, ten);
        if (ten > 10 * period_us * 3)
            note("periodic: %u us per tick on average, for a period of %u us", ten / 10, period_us);
    }
    check(cur > 0 && cur <= rate * period_us, "periodic: the current count reloads (%u of %u)", cur,
          rate * period_us);
    lapic_write(APIC_TIMER_INIT, 0);
    u32 stopped = ticks;
    sti_delay(5000);
    check(ticks <= stopped + 1, "periodic: writing initial count 0 stops it (%u more)", ticks - stopped);

    /* Masked: counts, reloads, never interrupts. */
    ticks = 0;
    lapic_write(APIC_LVT_TIMER, APIC_LVT_MASKED | APIC_TIMER_PERIODIC | V_TIMER);
    lapic_write(APIC_TIMER_INIT, rate * 200);
    sti_delay(3000);
    check(ticks == 0, "masked periodic timer: no interrupt (count %u)", ticks);
    check(lapic_read(APIC_TIMER_CUR) != 0, "masked periodic timer: still counting");
    timer_off();
}

static void test_tsc_deadline(void)
{
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    if (!(c & (1u << 24))) {
        skip_check("TSC-deadline mode: CPUID.01H:ECX[24] is clear on this vCPU");
        return;
    }
    ticks = 0;
    lapic_write(APIC_LVT_TIMER, APIC_TIMER_TSC_DEADLINE | V_TIMER);
    u64 deadline = rdtsc() + us_to_tsc(1000);
    wrmsr(MSR_IA32_TSC_DEADLINE, deadline);
    wait_until_ge(&ticks, 1, 200000);
    check(ticks == 1, "TSC deadline 1 ms ahead: fires (count %u)", ticks);
    if (ticks) {
        check(tsc_at[0] >= deadline, "not before the deadline");
        if (tsc_at[0] >= deadline) note("the handler ran %u us after the deadline", tsc_to_us(tsc_at[0] - deadline));
    }
    check(rdmsr(MSR_IA32_TSC_DEADLINE) == 0, "IA32_TSC_DEADLINE reads 0 once it fired");
    sti_delay(3000);
    check(ticks == 1, "fires once (count %u)", ticks);

    ticks = 0;
    wrmsr(MSR_IA32_TSC_DEADLINE, rdtsc() + us_to_tsc(2000));
    wrmsr(MSR_IA32_TSC_DEADLINE, 0);
    sti_delay(5000);
    check(ticks == 0, "writing 0 disarms a pending deadline (count %u)", ticks);

    wrmsr(MSR_IA32_TSC_DEADLINE, rdtsc() - 1000);
    wait_until_ge(&ticks, 1, 100000);
    check(ticks == 1, "a deadline already past fires at once (count %u)", ticks);

    ticks = 0;
    lapic_write(APIC_TIMER_INIT, rate * 500);
    sti_delay(3000);
    check(ticks == 0 && lapic_read(APIC_TIMER_CUR) == 0,
          "the initial-count register is ignored in TSC-deadline mode (count %u, current %u)", ticks,
          lapic_read(APIC_TIMER_CUR));
    timer_off();
}

void test_main(void)
{
    test_start("lapic_timer", "LAPIC timer: rate and divider, one-shot, periodic, masked, TSC-deadline");
    pic_disable();
    lapic_write(APIC_LVT_LINT0, APIC_LVT_MASKED | APIC_LVT_EXTINT);
    set_handler(V_TIMER, timer_handler);
    test_rate();
    test_oneshot();
    test_periodic();
    test_tsc_deadline();
}
