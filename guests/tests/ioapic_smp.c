/* The I/O APIC with two vCPUs: redirection to the other vCPU (edge and
 * level), logical destinations (flat model), lowest-priority delivery.
 * Needs -c 2 (checked through fw_cfg).
 *
 * Reference: Intel 82093AA datasheet 3.2.4 (destination mode and field,
 * delivery mode "lowest priority": delivered to the processor with the lowest
 * priority among those in the destination); Intel SDM vol. 3A 11.6.2
 * (logical destination, flat model), 11.6.2.4 (lowest priority delivery:
 * how the winner is chosen is model specific, but exactly one processor of
 * the destination set receives the interrupt). */
#include "runtime.h"

#define AP 1
#define PIN_EDGE 5
#define PIN_LEVEL 10
#define V_EDGE 0x50
#define V_LEVEL 0x51
#define V_LOWEST 0x52

static volatile u32 hits[MAX_CPUS][256];
static volatile u32 total;

static void rec(struct frame *f)
{
    const u8 v = (u8)f->vector;
    atomic_inc(&hits[this_cpu()][v]);
    atomic_inc(&total);
    if (v == V_LEVEL) testdev_line(PIN_LEVEL, 0);  /* the device's handler quiets the device... */
    lapic_eoi();                                   /* ...then acknowledges */
}

static void ap_set_logical(void)
{
    lapic_write(APIC_DFR, 0xffffffff);
    lapic_write(APIC_LDR, 0x02000000);
}

static void pulse(u32 pin)
{
    testdev_line(pin, 1);
    testdev_line(pin, 0);
}

/* Raises one edge and waits until `n` deliveries in all have arrived, plus
 * a little, so that a duplicate would be counted too. */
static void edge_and_wait(u32 n)
{
    pulse(PIN_EDGE);
    wait_until_ge(&total, n, 200000);
    sti_delay(2000);
}

void test_main(void)
{
    test_start("ioapic_smp", "IOAPIC with 2 vCPUs: redirection to the AP, logical destination, lowest priority");
    pic_disable();
    lapic_write(APIC_LVT_LINT0, APIC_LVT_MASKED | APIC_LVT_EXTINT);
    ioapic_mask_all();
    u32 cpus = fw_cfg_cpus();
    if (cpus < 2) fail_now("this guest needs 2 vCPUs (fw_cfg says %u): run it with -c 2", cpus);
    set_handler(V_EDGE, rec);
    set_handler(V_LEVEL, rec);
    set_handler(V_LOWEST, rec);
    if (!start_ap(AP)) fail_now("the AP (APIC ID %u) did not start", AP);

    /* Physical destination: the AP. */
    ioapic_route(PIN_EDGE, IOAPIC_FIXED | V_EDGE, AP);
    edge_and_wait(1);
    check(hits[AP][V_EDGE] == 1 && hits[0][V_EDGE] == 0, "edge pin 5 -> APIC ID 1: on the AP only (AP %u, BSP %u)",
          hits[AP][V_EDGE], hits[0][V_EDGE]);

    ioapic_route(PIN_LEVEL, IOAPIC_FIXED | IOAPIC_LEVEL | V_LEVEL, AP);
    total = 0;
    testdev_line(PIN_LEVEL, 1);
    wait_until_ge(&hits[AP][V_LEVEL], 1, 200000);
    sti_delay(2000);
    check(hits[AP][V_LEVEL] >= 1 && hits[0][V_LEVEL] == 0,
          "level pin 10 -> APIC ID 1: on the AP, which lowers the line and EOIs (AP %u, BSP %u)", hits[AP][V_LEVEL],
          hits[0][V_LEVEL]);
    check(!(ioapic_entry_lo(PIN_LEVEL) & IOAPIC_REMOTE_IRR), "the AP's EOI cleared remote IRR (entry %#x)",
          ioapic_entry_lo(PIN_LEVEL));
    ioapic_mask(PIN_LEVEL, 1);

    /* Logical destination, flat model: BSP = bit 0, AP = bit 1. */
    lapic_write(APIC_DFR, 0xffffffff);
    lapic_write(APIC_LDR, 0x01000000);
    ap_call(AP, ap_set_logical);
    wait_until_ge(&ap_calls_done[AP], 1, 100000);
    const u32 ap0 = hits[AP][V_EDGE], bsp0 = hits[0][V_EDGE];
    total = 0;
    ioapic_route(PIN_EDGE, IOAPIC_FIXED | IOAPIC_LOGICAL | V_EDGE, 0x02);
    edge_and_wait(1);
    check(hits[AP][V_EDGE] == ap0 + 1 && hits[0][V_EDGE] == bsp0, "logical 0x02: the AP only (AP +%u, BSP +%u)",
          hits[AP][V_EDGE] - ap0, hits[0][V_EDGE] - bsp0);
    total = 0;
    ioapic_route(PIN_EDGE, IOAPIC_FIXED | IOAPIC_LOGICAL | V_EDGE, 0x01);
    edge_and_wait(1);
    check(hits[AP][V_EDGE] == ap0 + 1 && hits[0][V_EDGE] == bsp0 + 1, "logical 0x01: the BSP only (AP +%u, BSP +%u)",
          hits[AP][V_EDGE] - ap0, hits[0][V_EDGE] - bsp0);
    total = 0;
    ioapic_route(PIN_EDGE, IOAPIC_FIXED | IOAPIC_LOGICAL | V_EDGE, 0x03);
    edge_and_wait(2);
    check(hits[AP][V_EDGE] == ap0 + 2 && hits[0][V_EDGE] == bsp0 + 2,
          "logical 0x03, fixed: both CPUs get it (AP +%u, BSP +%u)", hits[AP][V_EDGE] - ap0,
          hits[0][V_EDGE] - bsp0);

    /* Lowest priority to both: each edge reaches exactly one of them. With
     * the BSP's TPR raised, a priority-based arbiter picks the AP; KVM may
     * instead spread by vector ("vector hashing"): both are allowed. */
    ioapic_route(PIN_EDGE, IOAPIC_LOWEST | IOAPIC_LOGICAL | V_LOWEST, 0x03);
    lapic_write(APIC_TPR, 0x20);
    const u32 n = 4;
    u32 once = 1;
    total = 0;
    for (u32 i = 1; i <= n; i++) {
        edge_and_wait(i);
        if (total != i) once = 0;
    }
    lapic_write(APIC_TPR, 0);
    sti_delay(2000);
    check(once && total == n, "lowest priority: each of %u edges delivered to exactly one CPU (%u deliveries)", n,
          total);
    note("lowest priority with BSP TPR 0x20: AP got %u, BSP got %u", hits[AP][V_LOWEST], hits[0][V_LOWEST]);
    ioapic_mask_all();
    lapic_ipi(AP, ICR_INIT | ICR_ASSERT);
}
