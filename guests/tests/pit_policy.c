/* What the PIT does with ticks the guest could not take: with interrupts
 * disabled for 40 ms at 1 kHz, a "reinject" PIT delivers the ~40 missed
 * ticks once they are enabled again, on top of the new ones (as KVM's in-kernel
 * PIT does by default, KVM_REINJECT_CONTROL), a "discard" PIT delivers the
 * one edge the 8259A latched and carries on. Only meaningful where kvmini
 * emulates the PIT (split and user modes): the runner passes the policy
 * kvmini uses as pit_policy=reinject|discard. */
#include "runtime.h"

static volatile u32 ticks;

static void tick(struct frame *f)
{
    (void)f;
    ticks++;
    pic_eoi(0);
}

void test_main(void)
{
    test_start("pit_policy", "8254 lost-tick policy: reinject or discard");
    const char *policy = opt("pit_policy");
    if (!policy || (strncmp(policy, "reinject", 9) && strncmp(policy, "discard", 8)))
        skip("no pit_policy=reinject|discard on the command line: nothing to compare with");
    ioapic_mask_all();
    lapic_write(APIC_LVT_LINT0, APIC_LVT_EXTINT);
    set_handler(PIC_MASTER_BASE, tick);
    pic_set_mask((u16)~1u);
    pit_start(2, 1193);
    if (!hlt_until_ge(&ticks, 3, 200000)) fail_now("IRQ 0 does not tick at 1 kHz (%u ticks)", ticks);
    cli();
    udelay(40000);  /* ~40 ticks come due while interrupts are off */
    u32 before = ticks;
    hlt_for(40000);
    u32 n = ticks - before;
    pit_stop();
    pic_set_mask(0xffff);
    note("%u ticks in the 40 ms after 40 ms with interrupts off (about 80 if reinjected, 41 if not)", n);
    if (!strncmp(policy, "reinject", 9))
        check(n >= 60, "reinject: the missed ticks are delivered late (%u >= 60)", n);
    else
        check(n <= 55, "discard: the missed ticks are dropped (%u <= 55)", n);
}
