/* The I/O APIC on one CPU: registers, edge and level pins raised with
 * pc-testdev, remote IRR and its EOI, masking while a request is pending.
 * The 8259A is masked and LINT0 too, so only the IOAPIC path delivers.
 *
 * Reference: Intel 82093AA I/O APIC datasheet, 3.2.2 (IOAPICVER), 3.2.4
 * (I/O redirection table: delivery status, remote IRR, trigger mode, mask;
 * "edge-sensitive interrupts signaled on a masked pin are ignored");
 * Intel SDM vol. 3A 11.8.4 (TMR set for level-triggered vectors), 11.8.5
 * (EOI of a level-triggered vector is broadcast to the I/O APICs). */
#include "runtime.h"

#define VEC_EDGE 0x40
#define VEC_LEVEL 0x41
#define PIN_EDGE 5
#define PIN_LEVEL 10

static volatile u32 count[256];
static volatile u32 tmr_seen[256], remote_irr_seen[256];
static volatile int no_eoi;
static volatile u32 lower_after;

static void handler(struct frame *f)
{
    const u8 v = (u8)f->vector;
    if (!count[v]) {
        tmr_seen[v] = lapic_tmr(v);
        if (v == VEC_LEVEL) remote_irr_seen[v] = (ioapic_entry_lo(PIN_LEVEL) & IOAPIC_REMOTE_IRR) != 0;
    }
    count[v]++;
    if (v == VEC_LEVEL && lower_after && count[v] == lower_after) testdev_line(PIN_LEVEL, 0);
    if (!no_eoi) lapic_eoi();
}

/* Lets deliveries still in flight arrive; 1 if the count then stays put. */
static int settles(volatile u32 *c)
{
    for (u32 i = 0; i < 20; i++) {
        u32 before = *c;
        sti_delay(2000);
        if (*c == before) return 1;
    }
    return 0;
}

static void test_registers(void)
{
    u32 ver = ioapic_read(IOAPIC_REG_VER);
    u32 max = (ver >> 16) & 0xff;
    check(max == 23, "IOAPICVER: maximum redirection entry 23, i.e. 24 pins (read %#x)", ver);
    check((ver & 0xff) == 0x11 || (ver & 0xff) == 0x20, "IOAPICVER: version 0x11 (82093AA) or 0x20 (read %#x)",
          ver & 0xff);
    note("IOAPIC ID register %#x, version %#x", ioapic_read(IOAPIC_REG_ID), ver & 0xff);

    /* A redirection entry reads back what was written, except the read-only
     * delivery status and remote IRR (written as 1 here). */
    const u32 lo = IOAPIC_MASKED | IOAPIC_LEVEL | IOAPIC_REMOTE_IRR | IOAPIC_DELIVS | IOAPIC_LOGICAL | 0x99;
    ioapic_route(7, lo, 0xa5);
    u32 got_lo = ioapic_entry_lo(7), got_hi = ioapic_read(IOAPIC_REG_REDTBL + 2 * 7 + 1);
    check((got_lo & ~(IOAPIC_REMOTE_IRR | IOAPIC_DELIVS)) == (lo & ~(IOAPIC_REMOTE_IRR | IOAPIC_DELIVS)),
          "redirection entry 7 low word reads back (wrote %#x, read %#x)", lo, got_lo);
    check(!(got_lo & IOAPIC_REMOTE_IRR), "remote IRR is read-only: writing 1 leaves it 0 (read %#x)", got_lo);
    check((got_hi >> 24) == 0xa5, "redirection entry 7 destination reads back (read %#x)", got_hi);
    ioapic_route(7, IOAPIC_MASKED, 0);
}

static void test_edge(void)
{
    ioapic_route(PIN_EDGE, IOAPIC_FIXED | VEC_EDGE, this_cpu());
    testdev_line(PIN_EDGE, 1);
    wait_until_ge(&count[VEC_EDGE], 1, 100000);
    check(count[VEC_EDGE] == 1, "edge pin 5 delivers vector 0x40 (count %u)", count[VEC_EDGE]);
    check(!tmr_seen[VEC_EDGE], "TMR bit clear for an edge-triggered vector");
    sti_delay(2000);
    check(count[VEC_EDGE] == 1, "edge pin held high: delivered once (count %u)", count[VEC_EDGE]);
    testdev_line(PIN_EDGE, 0);
    testdev_line(PIN_EDGE, 1);
    wait_until_ge(&count[VEC_EDGE], 2, 100000);
    check(count[VEC_EDGE] == 2, "next rising edge: delivered again (count %u)", count[VEC_EDGE]);
    testdev_line(PIN_EDGE, 0);
}

static void test_level(void)
{
    ioapic_route(PIN_LEVEL, IOAPIC_FIXED | IOAPIC_LEVEL | VEC_LEVEL, this_cpu());
    lower_after = 3;  /* the handler drops the line at the third delivery, before its EOI */
    testdev_line(PIN_LEVEL, 1);
    wait_until_ge(&count[VEC_LEVEL], 3, 200000);
    check(count[VEC_LEVEL] >= 3, "level pin 10: delivered again after each EOI while asserted (count %u)",
          count[VEC_LEVEL]);
    check(settles(&count[VEC_LEVEL]), "level pin 10: deliveries stop once the line is low (count %u)",
          count[VEC_LEVEL]);
    if (isr_checks_blocked())
        skip_check("level pin 10 delivered exactly once per EOI (got %u for 3): %s", count[VEC_LEVEL],
                   isr_checks_blocked());
    else
        check(count[VEC_LEVEL] == 3, "level pin 10: exactly one delivery per EOI, none after the line drops "
                                     "(3 expected, got %u)", count[VEC_LEVEL]);
    check(tmr_seen[VEC_LEVEL], "TMR bit set for a level-triggered vector");
    check(remote_irr_seen[VEC_LEVEL], "remote IRR set while the level interrupt is in service");
    check(!(ioapic_entry_lo(PIN_LEVEL) & IOAPIC_REMOTE_IRR), "remote IRR clear once the line is low and EOIed "
                                                             "(entry %#x)", ioapic_entry_lo(PIN_LEVEL));
    lower_after = 0;
}

static void test_remote_irr(void)
{
    const char *blocked = isr_checks_blocked();
    if (blocked) {
        skip_check("remote IRR holds a re-asserted level line until the EOI: %s", blocked);
        return;
    }
    count[VEC_LEVEL] = 0;
    no_eoi = 1;
    testdev_line(PIN_LEVEL, 1);
    wait_until_ge(&count[VEC_LEVEL], 1, 100000);
    check(count[VEC_LEVEL] == 1, "level pin 10 delivered, left without EOI (count %u)", count[VEC_LEVEL]);
    check((ioapic_entry_lo(PIN_LEVEL) & IOAPIC_REMOTE_IRR) != 0, "remote IRR set (entry %#x)",
          ioapic_entry_lo(PIN_LEVEL));
    testdev_line(PIN_LEVEL, 0);
    testdev_line(PIN_LEVEL, 1);
    sti_delay(2000);
    check(count[VEC_LEVEL] == 1, "while remote IRR is set a new assertion is not delivered (count %u)",
          count[VEC_LEVEL]);
    no_eoi = 0;
    lower_after = 2;
    lapic_eoi();  /* broadcast to the IOAPIC: remote IRR clears, the line is still high */
    wait_until_ge(&count[VEC_LEVEL], 2, 100000);
    check(count[VEC_LEVEL] == 2, "the EOI clears remote IRR and the still-asserted line is delivered again "
                                 "(count %u)", count[VEC_LEVEL]);
    settles(&count[VEC_LEVEL]);
    check(!(ioapic_entry_lo(PIN_LEVEL) & IOAPIC_REMOTE_IRR), "remote IRR clear at the end (entry %#x)",
          ioapic_entry_lo(PIN_LEVEL));
    lower_after = 0;
    testdev_line(PIN_LEVEL, 0);
}

static void test_mask_pending(void)
{
    /* Level: a masked pin delivers nothing, but once unmasked the asserted
     * level is seen and delivered. */
    ioapic_mask(PIN_LEVEL, 1);
    settles(&count[VEC_LEVEL]);
    count[VEC_LEVEL] = 0;
    testdev_line(PIN_LEVEL, 1);
    sti_delay(2000);
    check(count[VEC_LEVEL] == 0, "masked level pin: not delivered (count %u)", count[VEC_LEVEL]);
    lower_after = 1;
    ioapic_mask(PIN_LEVEL, 0);
    wait_until_ge(&count[VEC_LEVEL], 1, 100000);
    check(count[VEC_LEVEL] >= 1, "unmasking a level pin that is still asserted delivers it (count %u)",
          count[VEC_LEVEL]);
    settles(&count[VEC_LEVEL]);
    lower_after = 0;
    testdev_line(PIN_LEVEL, 0);

    /* Edge: 82093AA 3.2.4, "Edge-sensitive interrupts signaled on a masked
     * interrupt pin are ignored (i.e., not delivered or held pending)". */
    count[VEC_EDGE] = 0;
    ioapic_mask(PIN_EDGE, 1);
    testdev_line(PIN_EDGE, 1);
    sti_delay(2000);
    ioapic_mask(PIN_EDGE, 0);
    sti_delay(2000);
    check(count[VEC_EDGE] == 0, "an edge on a masked pin is not held pending: nothing after unmasking (count %u)",
          count[VEC_EDGE]);
    testdev_line(PIN_EDGE, 0);
    testdev_line(PIN_EDGE, 1);
    wait_until_ge(&count[VEC_EDGE], 1, 100000);
    check(count[VEC_EDGE] == 1, "the next edge after unmasking is delivered (count %u)", count[VEC_EDGE]);
    testdev_line(PIN_EDGE, 0);
}

void test_main(void)
{
    test_start("ioapic", "82093AA: registers, edge, level, remote IRR and EOI, masking while pending");
    pic_disable();
    lapic_write(APIC_LVT_LINT0, APIC_LVT_MASKED | APIC_LVT_EXTINT);
    ioapic_mask_all();
    set_handler(VEC_EDGE, handler);
    set_handler(VEC_LEVEL, handler);
    test_registers();
    test_edge();
    test_level();
    test_remote_irr();
    test_mask_pending();
    ioapic_mask_all();
}
