/* The 8259A pair as a PC wires it (master at 0x20, slave at 0xa0 on master
 * IR2, ELCR at 0x4d0/0x4d1), reached through LINT0 in ExtINT mode, with the
 * IOAPIC masked. Lines are raised and lowered with pc-testdev.
 *
 * Reference: Intel 8259A datasheet (fully nested mode, ICW/OCW formats,
 * "Interrupt Sequence": IR must stay high until the first INTA or a default
 * IR7 results), Intel PIIX/ICH ELCR registers (edge/level per IRQ). */
#include "runtime.h"

/* What the IRQ handler does. */
enum eoi { EOI_NONSPECIFIC, EOI_NONE, EOI_ROTATE };
static volatile enum eoi eoi_mode;
static volatile u32 count[16];
static volatile u32 total;
static volatile u32 order[16], order_n;
static volatile u16 isr_seen[16];  /* PIC ISR as read in the handler, per IRQ (last) */
static volatile u32 lower_after;   /* level test: lower the line at this delivery */
static volatile u32 level_line;
static volatile u32 spurious7, real7;

static void irq_handler(struct frame *f)
{
    const u32 irq = f->vector - PIC_MASTER_BASE;
    if (irq == 7) {
        /* 8259A: a default IR7 (request gone before INTA) sets no ISR bit
         * and must not be acknowledged. */
        u16 isr = pic_isr();
        if (!(isr & 0x80)) {
            spurious7++;
            return;
        }
        real7++;
    }
    isr_seen[irq] = pic_isr();
    count[irq]++;
    if (order_n < ARRAY_SIZE(order)) order[order_n++] = irq;
    total++;
    if (lower_after && count[irq] == lower_after && irq == level_line) testdev_line(irq, 0);
    switch (eoi_mode) {
    case EOI_NONSPECIFIC:
        pic_eoi(irq);
        break;
    case EOI_ROTATE:
        if (irq >= 8) outb(PIC_SLAVE_CMD, OCW2_ROTATE_EOI);
        outb(PIC_MASTER_CMD, OCW2_ROTATE_EOI);
        break;
    case EOI_NONE:
        break;
    }
}

static void reset_log(void)
{
    for (u32 i = 0; i < 16; i++) count[i] = 0, isr_seen[i] = 0;
    order_n = 0;
    total = 0;
    lower_after = 0;
    eoi_mode = EOI_NONSPECIFIC;
}

/* Unmask exactly these IRQs (and the cascade input when a slave IRQ is in). */
static void unmask_only(u16 irqs)
{
    if (irqs & 0xff00) irqs |= 1u << 2;
    pic_set_mask((u16)~irqs);
}

static void set_elcr(u16 level_irqs)
{
    outb(PIC_ELCR1, (u8)level_irqs);
    outb(PIC_ELCR2, (u8)(level_irqs >> 8));
}

static u16 get_elcr(void) { return (u16)(inb(PIC_ELCR1) | inb(PIC_ELCR2) << 8); }

static void setup(int auto_eoi)
{
    pic_init(auto_eoi);
    set_elcr(0);
    /* Virtual wire (SDM vol. 3A 11.5.1, MP spec 3.6.2.2): LINT0 as ExtINT. */
    lapic_write(APIC_LVT_LINT0, APIC_LVT_EXTINT);
}

static void test_edge(void)
{
    reset_log();
    unmask_only(1u << 5);
    testdev_line(5, 1);
    int got = wait_until_ge(&count[5], 1, 100000);
    check(got, "edge IRQ 5 delivered as vector 0x25 (count %u)", count[5]);
    check(isr_seen[5] & (1u << 5), "ISR bit 5 set while the handler runs (ISR %#x)", isr_seen[5]);
    sti_delay(2000);
    check(count[5] == 1, "edge IRQ 5 with the line held high is delivered once (count %u)", count[5]);
    check(pic_isr() == 0, "ISR clear after the non-specific EOI (ISR %#x)", pic_isr());
    testdev_line(5, 0);
    testdev_line(5, 1);
    wait_until_ge(&count[5], 2, 100000);
    check(count[5] == 2, "a new rising edge delivers IRQ 5 again (count %u)", count[5]);
    testdev_line(5, 0);
}

static void test_level(void)
{
    reset_log();
    set_elcr(1u << 5);
    check((get_elcr() & (1u << 5)) != 0, "ELCR1 bit 5 reads back set (ELCR %#x)", get_elcr());
    unmask_only(1u << 5);
    level_line = 5;
    lower_after = 3;  /* the handler drops the line at the third delivery, before its EOI */
    testdev_line(5, 1);
    wait_until_ge(&count[5], 3, 200000);
    sti_delay(2000);
    check(count[5] == 3, "level IRQ 5 is delivered again after each EOI while high, and not after it drops (3 "
                         "expected, got %u)", count[5]);
    testdev_line(5, 0);
    lower_after = 0;
    set_elcr(0);
}

static void test_mask(void)
{
    reset_log();
    pic_set_mask(0xffff);
    check(pic_get_mask() == 0xffff, "OCW1 mask reads back (%#x)", pic_get_mask());
    testdev_line(5, 1);
    sti_delay(2000);
    check(count[5] == 0, "masked IRQ 5 is not delivered (count %u)", count[5]);
    check((pic_irr() & (1u << 5)) != 0, "masked IRQ 5 is pending in IRR (IRR %#x)", pic_irr());
    unmask_only(1u << 5);
    wait_until_ge(&count[5], 1, 100000);
    check(count[5] == 1, "unmasking delivers the pending edge (count %u)", count[5]);
    testdev_line(5, 0);
}

/* Raise both lines with interrupts off, then let them in: the order of
 * delivery is the priority order. */
static void raise_pair(u32 a, u32 b)
{
    cli();
    order_n = 0;
    total = 0;
    testdev_line(a, 1);
    testdev_line(b, 1);
    wait_until_ge(&total, 2, 100000);
    testdev_line(a, 0);
    testdev_line(b, 0);
}

static void test_priority(void)
{
    reset_log();
    unmask_only((1u << 3) | (1u << 6));
    raise_pair(6, 3);
    check(order_n == 2 && order[0] == 3 && order[1] == 6,
          "fixed priority: IRQ 3 before IRQ 6 (got %u deliveries: %u, %u)", order_n, order[0], order[1]);

    /* OCW2 "set priority command": IR5 becomes the lowest, so IR6 the highest. */
    outb(PIC_MASTER_CMD, OCW2_SET_PRIORITY | 5);
    raise_pair(3, 6);
    check(order_n == 2 && order[0] == 6 && order[1] == 3,
          "specific rotation (IR5 lowest): IRQ 6 before IRQ 3 (got %u: %u, %u)", order_n, order[0], order[1]);
    outb(PIC_MASTER_CMD, OCW2_SET_PRIORITY | 7);  /* back to IR0 highest */

    /* OCW2 "rotate on non-specific EOI": the IRQ just serviced becomes the
     * lowest. Service IRQ 3 that way, then IRQ 6 outranks it. */
    eoi_mode = EOI_ROTATE;
    total = 0;
    testdev_line(3, 1);
    wait_until_ge(&total, 1, 100000);
    testdev_line(3, 0);
    eoi_mode = EOI_NONSPECIFIC;
    raise_pair(3, 6);
    check(order_n == 2 && order[0] == 6 && order[1] == 3,
          "automatic rotation (IRQ 3 serviced with rotate-EOI): IRQ 6 before IRQ 3 (got %u: %u, %u)", order_n,
          order[0], order[1]);
    outb(PIC_MASTER_CMD, OCW2_SET_PRIORITY | 7);
}

static void test_specific_eoi(void)
{
    reset_log();
    eoi_mode = EOI_NONE;
    unmask_only((1u << 3) | (1u << 5) | (1u << 6));
    testdev_line(6, 1);
    wait_until_ge(&count[6], 1, 100000);
    testdev_line(3, 1);
    wait_until_ge(&count[3], 1, 100000);
    check(count[6] == 1 && count[3] == 1, "IRQ 3 nests over IRQ 6 left in service (counts %u, %u)", count[6],
          count[3]);
    check(pic_isr() == ((1u << 3) | (1u << 6)), "ISR holds IRQ 3 and 6 (ISR %#x)", pic_isr());
    testdev_line(5, 1);
    sti_delay(2000);
    check(count[5] == 0, "IRQ 5 waits while IRQ 3 (higher) is in service (count %u)", count[5]);
    outb(PIC_MASTER_CMD, OCW2_SPECIFIC_EOI | 6);
    check(pic_isr() == (1u << 3), "specific EOI 6 clears only ISR bit 6, not the highest (ISR %#x)", pic_isr());
    sti_delay(2000);
    check(count[5] == 0, "IRQ 5 still waits behind IRQ 3 (count %u)", count[5]);
    outb(PIC_MASTER_CMD, OCW2_SPECIFIC_EOI | 3);
    wait_until_ge(&count[5], 1, 100000);
    check(count[5] == 1, "specific EOI 3 lets IRQ 5 in (count %u)", count[5]);
    outb(PIC_MASTER_CMD, OCW2_SPECIFIC_EOI | 5);
    check(pic_isr() == 0, "ISR empty after the specific EOIs (ISR %#x)", pic_isr());
    testdev_line(3, 0);
    testdev_line(5, 0);
    testdev_line(6, 0);
    eoi_mode = EOI_NONSPECIFIC;
}

static void test_aeoi(void)
{
    setup(1);
    reset_log();
    eoi_mode = EOI_NONE;
    unmask_only(1u << 5);
    testdev_line(5, 1);
    wait_until_ge(&count[5], 1, 100000);
    check(count[5] == 1, "AEOI: IRQ 5 delivered (count %u)", count[5]);
    check(!(isr_seen[5] & (1u << 5)), "AEOI: ISR bit 5 already clear in the handler (ISR %#x)", isr_seen[5]);
    testdev_line(5, 0);
    testdev_line(5, 1);
    wait_until_ge(&count[5], 2, 100000);
    check(count[5] == 2, "AEOI: the next edge comes without any EOI command (count %u)", count[5]);
    testdev_line(5, 0);
    setup(0);
    eoi_mode = EOI_NONSPECIFIC;
}

static void test_irq7_and_poll(void)
{
    reset_log();
    unmask_only(1u << 7);
    testdev_line(7, 1);
    wait_until_ge(&real7, 1, 100000);
    check(real7 == 1 && spurious7 == 0, "a real IRQ 7 has ISR bit 7 set in its handler (real %u, spurious %u)",
          real7, spurious7);
    testdev_line(7, 0);

    /* A level request that goes away before the CPU acknowledges it: the
     * 8259A answers the INTA with IR7 and no ISR bit (a spurious IRQ 7); an
     * emulation may instead drop INTR with the request. Either is right;
     * delivering vector 0x25 for a request that is gone is not. */
    reset_log();
    u32 real_before = real7, spurious_before = spurious7;
    set_elcr(1u << 5);
    unmask_only((1u << 5) | (1u << 7));
    cli();
    testdev_line(5, 1);
    testdev_line(5, 0);
    sti_delay(2000);
    check(count[5] == 0 && real7 == real_before,
          "a level IRQ 5 withdrawn before INTA is not delivered as IRQ 5 or a real IRQ 7 (IRQ 5 x%u)", count[5]);
    note("withdrawn request: %s", spurious7 != spurious_before ? "spurious IRQ 7 (ISR bit 7 clear), as the 8259A"
                                                               : "no interrupt at all (INTR dropped with it)");
    set_elcr(0);

    /* OCW3 poll: the next read of the command port acknowledges the highest
     * request: bit 7 = a request was there, bits 2:0 = its level. */
    cli();
    unmask_only(1u << 5);
    outb(PIC_MASTER_CMD, OCW3_POLL);
    u8 none = inb(PIC_MASTER_CMD);
    check(!(none & 0x80), "poll with nothing pending: no request bit (read %#x)", none);
    testdev_line(5, 1);
    outb(PIC_MASTER_CMD, OCW3_POLL);
    u8 poll = inb(PIC_MASTER_CMD);
    /* KVM's in-kernel 8259A in Linux 6.1 (arch/x86/kvm/i8259.c pic_poll_read,
     * the hardware-style lane's L1) returns the level alone, bit 7 clear. */
    if (poll == 0x05 && !strncmp(irqchip_mode, "kernel", 7))
        skip_check("poll with IRQ 5 pending reads 0x85 (read %#x): host limitation: KVM's in-kernel 8259A "
                   "returns the level without the request bit 7", poll);
    else
        check(poll == 0x85, "poll with IRQ 5 pending reads 0x85 (read %#x)", poll);
    /* The datasheet's poll sets the IS bit like an INTA; KVM's in-kernel PIC
     * clears it instead. Reported, not judged: the request is taken either way. */
    u16 isr = pic_isr();
    note("ISR after the poll: %#x (%s)", isr, isr & (1u << 5) ? "bit 5 set, as the 8259A datasheet says"
                                                             : "bit 5 clear: this PIC does not set IS on a poll");
    check(!(pic_irr() & (1u << 5)), "the poll took the request out of IRR (IRR %#x)", pic_irr());
    outb(PIC_MASTER_CMD, OCW2_EOI);
    testdev_line(5, 0);
    sti_delay(1000);
    check(count[5] == 0, "a polled request is not delivered again as an interrupt (count %u)", count[5]);
}

static void test_cascade(void)
{
    reset_log();
    unmask_only(1u << 10);
    testdev_line(10, 1);
    wait_until_ge(&count[10], 1, 100000);
    check(count[10] == 1, "slave IRQ 10 delivered as vector 0x2a (count %u)", count[10]);
    check((isr_seen[10] & ((1u << 2) | (1u << 10))) == ((1u << 2) | (1u << 10)),
          "in its handler: master ISR bit 2 (cascade) and slave ISR bit 2 (IRQ 10) set (ISR %#x)", isr_seen[10]);
    check(pic_isr() == 0, "EOI to slave and master clears both (ISR %#x)", pic_isr());
    testdev_line(10, 0);

    /* Through IR2, the slave's requests rank between master IRQ 1 and IRQ 3. */
    unmask_only((1u << 3) | (1u << 10));
    raise_pair(3, 10);
    check(order_n == 2 && order[0] == 10 && order[1] == 3,
          "slave IRQ 10 before master IRQ 3 (got %u: %u, %u)", order_n, order[0], order[1]);

    /* Masking the cascade input on the master blocks every slave request. */
    reset_log();
    pic_set_mask((u16)~(1u << 10));  /* slave IRQ 10 unmasked, master IR2 masked */
    testdev_line(10, 1);
    sti_delay(2000);
    check(count[10] == 0, "slave IRQ 10 blocked while master IR2 is masked (count %u)", count[10]);
    unmask_only(1u << 10);
    wait_until_ge(&count[10], 1, 100000);
    check(count[10] == 1, "unmasking IR2 lets it through (count %u)", count[10]);
    testdev_line(10, 0);
}

void test_main(void)
{
    test_start("pic", "8259A: edge, level (ELCR), mask, priority/rotation, specific EOI, AEOI, IRQ 7, poll, cascade");
    ioapic_mask_all();
    for (u32 v = PIC_MASTER_BASE; v < PIC_MASTER_BASE + 16; v++) set_handler((u8)v, irq_handler);
    setup(0);
    test_edge();
    test_level();
    test_mask();
    test_priority();
    test_specific_eoi();
    test_aeoi();
    test_irq7_and_poll();
    test_cascade();
    pic_set_mask(0xffff);
}
