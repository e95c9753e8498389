/*
 * An interrupt message that nobody takes must be dropped, as on the APIC
 * bus, never fatal to the VMM (issue 13, finding 1). The I/O APIC sends a
 * lowest-priority message to the logical broadcast destination (0xff) while this
 * CPU's local APIC is software-disabled (SVR bit 8 clear): KVM refuses such
 * an MSI (KVM_SIGNAL_MSI fails with EPERM), which is what kvmini's own I/O
 * APIC hands it in split mode. Then the APIC is enabled again and an
 * ordinary fixed interrupt through the same pin must still arrive: the VMM
 * is alive and its interrupt path works. The refused message itself must
 * not arrive (the APIC was disabled: SDM vol. 3A 11.4.7.2).
 *
 * Line 10 of pc-testdev (0x2000 + 10) drives IOAPIC pin 10.
 */
#include "runtime.h"

#define PIN 10
#define V_REFUSED 0x40
#define V_FIXED 0x41

static volatile u32 refused_irqs, fixed_irqs;

static void on_refused(struct frame *f)
{
    (void)f;
    refused_irqs++;
    lapic_eoi();
}

static void on_fixed(struct frame *f)
{
    (void)f;
    fixed_irqs++;
    lapic_eoi();
}

void test_main(void)
{
    test_start("msi_refused", "a message KVM refuses is dropped, and the VMM goes on");
    set_handler(V_REFUSED, on_refused);
    set_handler(V_FIXED, on_fixed);
    lapic_enable();
    ioapic_mask_all();

    ioapic_route(PIN, IOAPIC_LOWEST | IOAPIC_LOGICAL | V_REFUSED, 0xff);
    lapic_write(APIC_SVR, lapic_read(APIC_SVR) & ~APIC_SVR_ENABLE);
    testdev_line(PIN, 1);
    testdev_line(PIN, 0);
    sti_delay(2000);
    lapic_enable();
    sti_delay(2000);
    check(refused_irqs == 0, "the message sent while the APIC was disabled did not arrive (%u)", refused_irqs);

    ioapic_route(PIN, IOAPIC_FIXED | V_FIXED, this_cpu());
    testdev_line(PIN, 1);
    testdev_line(PIN, 0);
    wait_until_ge(&fixed_irqs, 1, 100000);
    check(fixed_irqs == 1, "an ordinary interrupt through the same pin arrives afterwards (%u)", fixed_irqs);
    ioapic_mask(PIN, 1);
    finish();
}
