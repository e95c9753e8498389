/* The local APIC between two vCPUs: INIT/SIPI start-up and restart, fixed
 * IPIs in both directions, destination shorthands, logical destination, NMI.
 * Needs -c 2 (checked through fw_cfg).
 *
 * Reference: Intel SDM vol. 3A 11.6.1 (ICR: delivery modes fixed, NMI, INIT,
 * start-up; shorthands), 11.6.2.2 (logical destination, flat model), 9.4.4
 * (MP initialization: INIT-SIPI-SIPI), 11.4.7.3 (INIT puts a processor in
 * wait-for-SIPI; its APIC ID survives). */
#include "runtime.h"

#define AP 1
#define V_PING 0x60
#define V_PONG 0x61
#define V_BCAST 0x62
#define V_LOGICAL 0x63

static volatile u32 hits[MAX_CPUS][256];
static volatile u32 nmis[MAX_CPUS];
static volatile u32 ap_seen_id;

static void rec(struct frame *f)
{
    atomic_inc(&hits[this_cpu()][f->vector & 0xff]);
    lapic_eoi();
}

/* The AP answers a ping with a pong to the BSP. */
static void ping(struct frame *f)
{
    atomic_inc(&hits[this_cpu()][f->vector & 0xff]);
    lapic_eoi();
    lapic_ipi(0, ICR_FIXED | V_PONG);
}

static void nmi(struct frame *f)
{
    (void)f;
    atomic_inc(&nmis[this_cpu()]);
}

static void ap_report_id(void) { ap_seen_id = this_cpu(); }

static void ap_set_logical(void)
{
    lapic_write(APIC_DFR, 0xffffffff);
    lapic_write(APIC_LDR, 0x02000000);
}

void test_main(void)
{
    test_start("lapic_smp", "LAPIC with 2 vCPUs: INIT/SIPI, IPIs both ways, shorthands, logical, NMI");
    pic_disable();
    lapic_write(APIC_LVT_LINT0, APIC_LVT_MASKED | APIC_LVT_EXTINT);
    u32 cpus = fw_cfg_cpus();
    if (cpus < 2) fail_now("this guest needs 2 vCPUs (fw_cfg says %u): run it with -c 2", cpus);
    set_handler(V_PING, ping);
    set_handler(V_PONG, rec);
    set_handler(V_BCAST, rec);
    set_handler(V_LOGICAL, rec);
    set_handler(2, nmi);

    /* INIT, SIPI: the AP runs the real-mode trampoline into long mode. */
    int up = start_ap(AP);
    check(up, "INIT + SIPI start the AP (APIC ID %u): it ran the trampoline %u time(s)", AP, ap_starts[AP]);
    if (!up) finish();
    ap_call(AP, ap_report_id);
    wait_until_ge(&ap_calls_done[AP], 1, 100000);
    check(ap_seen_id == AP, "the AP reads its own APIC ID %u (read %u)", AP, ap_seen_id);

    /* Fixed IPI to the AP, which answers with one to the BSP. */
    lapic_ipi(AP, ICR_FIXED | V_PING);
    wait_until_ge(&hits[0][V_PONG], 1, 200000);
    check(hits[AP][V_PING] == 1, "fixed IPI BSP -> AP delivered on the AP (count %u)", hits[AP][V_PING]);
    check(hits[0][V_PONG] == 1, "fixed IPI AP -> BSP delivered on the BSP (count %u)", hits[0][V_PONG]);
    check(hits[0][V_PING] == 0, "the ping did not reach the BSP (count %u)", hits[0][V_PING]);

    /* Shorthands. */
    lapic_ipi(0, ICR_ALL_EXCL | V_BCAST);
    wait_until_ge(&hits[AP][V_BCAST], 1, 200000);
    sti_delay(2000);
    check(hits[AP][V_BCAST] == 1 && hits[0][V_BCAST] == 0,
          "all-excluding-self: the AP only (AP %u, BSP %u)", hits[AP][V_BCAST], hits[0][V_BCAST]);
    lapic_ipi(0, ICR_ALL_INCL | V_BCAST);
    wait_until_ge(&hits[AP][V_BCAST], 2, 200000);
    wait_until_ge(&hits[0][V_BCAST], 1, 200000);
    check(hits[AP][V_BCAST] == 2 && hits[0][V_BCAST] == 1,
          "all-including-self: both (AP %u, BSP %u)", hits[AP][V_BCAST], hits[0][V_BCAST]);

    /* Logical destination, flat model: BSP = bit 0, AP = bit 1. */
    lapic_write(APIC_DFR, 0xffffffff);
    lapic_write(APIC_LDR, 0x01000000);
    ap_call(AP, ap_set_logical);
    wait_until_ge(&ap_calls_done[AP], 2, 100000);
    lapic_ipi(0x02, ICR_LOGICAL | V_LOGICAL);
    wait_until_ge(&hits[AP][V_LOGICAL], 1, 200000);
    sti_delay(2000);
    check(hits[AP][V_LOGICAL] == 1 && hits[0][V_LOGICAL] == 0, "logical destination 0x02: the AP only (AP %u, BSP %u)",
          hits[AP][V_LOGICAL], hits[0][V_LOGICAL]);
    lapic_ipi(0x03, ICR_LOGICAL | V_LOGICAL);
    wait_until_ge(&hits[AP][V_LOGICAL], 2, 200000);
    wait_until_ge(&hits[0][V_LOGICAL], 1, 200000);
    check(hits[AP][V_LOGICAL] == 2 && hits[0][V_LOGICAL] == 1,
          "logical destination 0x03: both (AP %u, BSP %u)", hits[AP][V_LOGICAL], hits[0][V_LOGICAL]);

    /* NMI IPIs: to the AP, and to this CPU by its own APIC ID. */
    lapic_ipi(AP, ICR_NMI);
    spin_until_ge(&nmis[AP], 1, 200000);
    check(nmis[AP] == 1 && nmis[0] == 0, "NMI IPI to the AP: its vector 2 handler ran (AP %u, BSP %u)", nmis[AP],
          nmis[0]);
    cli();
    lapic_ipi(0, ICR_NMI);
    spin_until_ge(&nmis[0], 1, 200000);
    check(nmis[0] == 1, "NMI IPI to its own APIC ID, taken with interrupts disabled (count %u)", nmis[0]);

    /* INIT again: the AP drops what it does and waits for a SIPI; the SIPI
     * runs the trampoline a second time, and the AP works as before. */
    const u32 before = ap_starts[AP];
    lapic_ipi(AP, ICR_INIT | ICR_ASSERT);
    udelay(1000);
    check(ap_starts[AP] == before, "after INIT alone the AP does not restart (%u starts)", ap_starts[AP]);
    lapic_ipi(AP, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
    u64 end = rdtsc() + us_to_tsc(500000);
    while (ap_starts[AP] == before && rdtsc() < end) pause();
    check(ap_starts[AP] == before + 1, "INIT + SIPI restart the AP through the trampoline (%u starts)",
          ap_starts[AP]);
    u32 pings = hits[AP][V_PING];
    lapic_ipi(AP, ICR_FIXED | V_PING);
    wait_until_ge(&hits[AP][V_PING], pings + 1, 200000);
    check(hits[AP][V_PING] == pings + 1, "the restarted AP takes IPIs again (count %u)", hits[AP][V_PING]);
    lapic_ipi(AP, ICR_INIT | ICR_ASSERT);  /* park it: nothing runs there while the guest ends */
}
