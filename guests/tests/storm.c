/* An interrupt storm: IOAPIC pin 10 level-triggered and raised through
 * pc-testdev, never lowered. The handler only counts and EOIs, so the pin is
 * delivered again and again for as long as the guest runs. This guest never
 * ends by itself: tests/integration/storm_test.sh checks that kvmini's other
 * threads (the console) are still served, and quits it with Ctrl-A x.
 *
 * EOI: the LAPIC EOI (broadcast to the IOAPIC, SDM vol. 3A 11.8.5), and where
 * the IOAPIC is version 0x20 (kvmini's, split mode) also its EOI register
 * (IOAPIC base + 0x40, written with the vector). KVM's in-kernel IOAPIC is
 * 0x11 (82093AA) and has no such register.
 *
 * Output: "storm: running" once 100 interrupts arrived, then a progress line
 * every STORM_EVERY interrupts with the count and the rate since the start
 * (printing is slow here: each byte is an exit). */
#include "runtime.h"

#define VEC_STORM 0x41
#define PIN_STORM 10
#define IOAPIC_EOI 0x40
#define STORM_RUNNING 100
#define STORM_EVERY 5000

static volatile u32 count;
static int ioapic_has_eoi;

static void handler(struct frame *f)
{
    (void)f;
    count++;
    lapic_eoi();
    if (ioapic_has_eoi) mmio_write32(IOAPIC_BASE + IOAPIC_EOI, VEC_STORM);
}

static void report(u64 start)
{
    const u32 n = count;
    const u64 us = tsc_to_us(rdtsc() - start);
    printf("storm: %u interrupts in %u ms, %u per second\n", n, (u32)(us / 1000),
           us ? (u32)div64_32((u64)n * 1000000, (u32)us, NULL) : 0);
}

void test_main(void)
{
    test_start("storm", "a level line that is never lowered; runs until the host stops it");
    pic_disable();
    lapic_write(APIC_LVT_LINT0, APIC_LVT_MASKED | APIC_LVT_EXTINT);
    ioapic_mask_all();
    const u32 ver = ioapic_read(IOAPIC_REG_VER) & 0xff;
    ioapic_has_eoi = ver >= 0x20;
    note("IOAPIC version %#x: EOI by %s", ver, ioapic_has_eoi ? "LAPIC EOI and the IOAPIC EOI register" : "LAPIC EOI");
    set_handler(VEC_STORM, handler);
    ioapic_route(PIN_STORM, IOAPIC_FIXED | IOAPIC_LEVEL | VEC_STORM, this_cpu());  /* active high */
    testdev_line(PIN_STORM, 1);

    const u64 start = rdtsc();
    u32 next = STORM_EVERY;
    int running = 0;
    sti();
    for (;;) {
        const u32 n = count;
        if (!running && n >= STORM_RUNNING) {
            running = 1;
            puts("storm: running\n");
            report(start);
        }
        if (n >= next) {
            report(start);
            next = n + STORM_EVERY;
        }
        pause();
    }
}
