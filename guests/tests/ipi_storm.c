/* An IPI storm between two vCPUs: both send each other fixed IPIs as fast
 * as they can (up to 100000 each, for at most 1 s) while taking the other's.
 * The VMM must not hang or crash, no IPI may be delivered more often than it
 * was sent, both CPUs must get through, and the APICs must work normally
 * afterwards. Then a burst to a CPU that has interrupts disabled: the IRR
 * holds one bit per vector, so it arrives once. And ping-pong with both
 * CPUs asleep in HLT while they wait: no lost wake-up. Needs -c 2.
 *
 * Reference: Intel SDM vol. 3A 11.6.1 (ICR, fixed delivery), 11.8.4 (IRR:
 * one bit per vector; an interrupt that arrives while its IRR bit is set is
 * merged with the pending one), 11.8.5 (EOI). */
#include "runtime.h"

#define AP 1
#define V_TO_AP 0x64
#define V_TO_BSP 0x65
#define V_CHECK 0x66
#define V_PING 0x67
#define V_PONG 0x68
#define PINGS 1000
#define MAX_SENDS 100000
#define STORM_US 1000000

static volatile u32 got[MAX_CPUS][256];
static volatile u32 sent[MAX_CPUS];
static volatile u32 go, ap_hold_if0, ap_holding;

static void rec(struct frame *f)
{
    got[this_cpu()][f->vector & 0xff]++;
    lapic_eoi();
}

/* The AP, asleep in HLT between them, answers each ping with a pong. */
static void ping(struct frame *f)
{
    rec(f);
    lapic_ipi(0, ICR_FIXED | V_PONG);
}

/* Sends up to MAX_SENDS fixed IPIs to `dest` with interrupts enabled, for
 * at most STORM_US: one ICR write each (the ICR's high half set once;
 * delivery status is not polled, a fixed IPI is sent at once). */
static void storm(u32 me, u32 dest, u32 vector)
{
    lapic_write(APIC_ICR_HI, dest << 24);
    const u64 end = rdtsc() + us_to_tsc(STORM_US);
    u32 n = 0;
    sti();
    while (n < MAX_SENDS && rdtsc() < end) {
        lapic_write(APIC_ICR_LO, ICR_FIXED | vector);
        n++;
        if (!(n & 255)) sent[me] = n;
    }
    sent[me] = n;
    cli();
}

static void ap_storm(void)
{
    while (!go) pause();
    storm(AP, 0, V_TO_BSP);
}

/* The AP, IF=0, waits until the BSP lets go, then takes what is pending. */
static void ap_hold(void)
{
    ap_holding = 1;
    while (ap_hold_if0) pause();
    sti_delay(5000);
    ap_holding = 0;
}

void test_main(void)
{
    test_start("ipi_storm", "2 vCPUs send each other fixed IPIs as fast as they can; a burst to a CPU with IF=0");
    pic_disable();
    lapic_write(APIC_LVT_LINT0, APIC_LVT_MASKED | APIC_LVT_EXTINT);
    u32 cpus = fw_cfg_cpus();
    if (cpus < 2) fail_now("this guest needs 2 vCPUs (fw_cfg says %u): run it with -c 2", cpus);
    set_handler(V_TO_AP, rec);
    set_handler(V_TO_BSP, rec);
    set_handler(V_CHECK, rec);
    set_handler(V_PING, ping);
    set_handler(V_PONG, rec);
    if (!start_ap(AP)) fail_now("the AP (APIC ID %u) did not start", AP);

    ap_call(AP, ap_storm);
    u64 t0 = rdtsc();
    go = 1;
    storm(0, AP, V_TO_AP);
    wait_until_ge(&ap_calls_done[AP], 1, 2 * STORM_US + 1000000);
    sti_delay(20000);  /* the last ones land */
    const u32 us = tsc_to_us(rdtsc() - t0);
    const u32 to_ap = got[AP][V_TO_AP], to_bsp = got[0][V_TO_BSP];
    note("in %u ms: BSP sent %u, the AP took %u; AP sent %u, the BSP took %u", us / 1000, sent[0], to_ap, sent[AP],
         to_bsp);
    check(ap_calls_done[AP] == 1, "the AP finished its storm");
    check(to_ap <= sent[0] && to_bsp <= sent[AP], "no IPI delivered more often than sent (AP %u of %u, BSP %u of %u)",
          to_ap, sent[0], to_bsp, sent[AP]);
    check(sent[0] >= 100 && sent[AP] >= 100, "both CPUs kept sending (BSP %u, AP %u)", sent[0], sent[AP]);
    check(to_ap >= 1 && to_bsp >= 1, "both CPUs took IPIs during the storm (AP %u, BSP %u)", to_ap, to_bsp);
    check(got[0][V_TO_AP] == 0 && got[AP][V_TO_BSP] == 0, "none went to the wrong CPU (BSP took %u of the AP's "
          "vector, the AP %u of the BSP's)", got[0][V_TO_AP], got[AP][V_TO_BSP]);
    check(!lapic_irr(V_TO_BSP) && lapic_isr_count() == 0, "afterwards nothing is left pending or in service on the "
          "BSP (IRR %#x: %u, ISR count %u)", V_TO_BSP, lapic_irr(V_TO_BSP), lapic_isr_count());

    /* Normal service afterwards, both ways. */
    lapic_ipi(AP, ICR_FIXED | V_CHECK);
    wait_until_ge(&got[AP][V_CHECK], 1, 200000);
    check(got[AP][V_CHECK] == 1, "after the storm a single IPI to the AP arrives once (count %u)", got[AP][V_CHECK]);
    lapic_ipi(0, ICR_SELF | V_CHECK);
    wait_until_ge(&got[0][V_CHECK], 1, 200000);
    check(got[0][V_CHECK] == 1, "and a self-IPI on the BSP (count %u)", got[0][V_CHECK]);

    /* Ping-pong, each side asleep in HLT while it waits: no wake-up may be
     * lost (a lost one leaves a ping or a pong waiting until the deadline). */
    u32 trips = 0;
    const u64 p0 = rdtsc();
    for (u32 i = 1; i <= PINGS; i++) {
        lapic_ipi(AP, ICR_FIXED | V_PING);
        if (!hlt_until_ge(&got[0][V_PONG], i, 200000)) break;
        trips = i;
    }
    const u32 pus = tsc_to_us(rdtsc() - p0);
    check(trips == PINGS && got[AP][V_PING] == PINGS, "%u ping-pongs with both CPUs sleeping in HLT between them: "
          "%u completed (AP took %u pings, BSP %u pongs; %u us per round trip)", PINGS, trips, got[AP][V_PING],
          got[0][V_PONG], trips ? pus / trips : 0);

    /* A burst to a CPU with IF=0: merged into one IRR bit. */
    const u32 before = got[AP][V_TO_AP];
    ap_hold_if0 = 1;
    ap_call(AP, ap_hold);
    spin_until_ge(&ap_holding, 1, 200000);
    const u32 burst = 1000;
    lapic_write(APIC_ICR_HI, AP << 24);
    for (u32 i = 0; i < burst; i++) lapic_write(APIC_ICR_LO, ICR_FIXED | V_TO_AP);
    udelay(2000);
    const u32 while_held = got[AP][V_TO_AP] - before;
    ap_hold_if0 = 0;
    wait_until_ge(&ap_calls_done[AP], 2, 200000);
    const u32 total = got[AP][V_TO_AP] - before;
    check(ap_holding == 0 && while_held == 0 && total == 1,
          "%u IPIs to the AP while IF=0 there: none taken meanwhile (%u), exactly one once IF=1 (%u)", burst,
          while_held, total);
    lapic_ipi(AP, ICR_INIT | ICR_ASSERT);
}
