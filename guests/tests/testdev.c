/* The test devices themselves, as a guest sees them (kvmini --test-devices):
 * fw_cfg's items against what the runner started kvmini with (mem=MiB
 * cpus=N on the command line), and pc-testdev lines reaching an interrupt
 * controller. isa-debug-exit is what every guest ends with.
 *
 * Reference: QEMU docs/specs/fw_cfg.rst (selector 0x510, data 0x511,
 * signature "QEMU", ID bit 0 = traditional interface, RAM_SIZE 64-bit LE,
 * NB_CPUS/MAX_CPUS 16-bit LE; a missing item reads 0). */
#include "runtime.h"

static void fw_read(u16 key, void *buf, u32 n)
{
    outw(0x510, key);
    u8 *b = buf;
    while (n--) *b++ = inb(0x511);
}

static u32 number(const char *s)
{
    u32 v = 0;
    while (s && *s >= '0' && *s <= '9') v = v * 10 + (u32)(*s++ - '0');
    return v;
}

static volatile u32 line_irqs;

static void line_irq(struct frame *f)
{
    (void)f;
    line_irqs++;
    lapic_eoi();
}

void test_main(void)
{
    test_start("testdev", "fw_cfg items, pc-testdev lines");
    char sig[5] = {0};
    fw_read(0x0000, sig, 4);
    check(sig[0] == 'Q' && sig[1] == 'E' && sig[2] == 'M' && sig[3] == 'U', "fw_cfg signature \"QEMU\" (read \"%s\")",
          sig);
    u32 id = 0;
    fw_read(0x0001, &id, 4);
    check(id & 1, "fw_cfg ID: traditional interface bit set (%#x)", id);
    u64 ram = 0;
    fw_read(0x0003, &ram, 8);
    u16 cpus = 0, max_cpus = 0;
    fw_read(0x0005, &cpus, 2);
    fw_read(0x000f, &max_cpus, 2);
    const char *mem_opt = opt("mem"), *cpus_opt = opt("cpus");
    if (mem_opt)
        check(ram == (u64)number(mem_opt) << 20, "fw_cfg RAM size = -m %s MiB (read %llu bytes)", mem_opt, ram);
    else
        check(ram >= (16ull << 20), "fw_cfg RAM size plausible (%llu bytes)", ram);
    if (cpus_opt)
        check(cpus == number(cpus_opt), "fw_cfg NB_CPUS = -c %s (read %u)", cpus_opt, cpus);
    else
        check(cpus >= 1, "fw_cfg NB_CPUS at least 1 (read %u)", cpus);
    check(max_cpus >= cpus, "fw_cfg MAX_CPUS >= NB_CPUS (%u, %u)", max_cpus, cpus);
    u8 uuid[16];
    fw_read(0x0002, uuid, 16);
    u32 nonzero = 0;
    for (u32 i = 0; i < 16; i++) nonzero |= uuid[i];
    check(nonzero == 0, "an item kvmini does not provide (UUID) reads as zeros");
    fw_read(0x0000, sig, 2);
    fw_read(0x0000, sig, 4);
    check(sig[0] == 'Q' && sig[3] == 'U', "selecting again restarts at offset 0 (\"%s\")", sig);

    /* pc-testdev: line 9 (no device of kvmini's own uses it) to IOAPIC pin 9. */
    pic_disable();
    lapic_write(APIC_LVT_LINT0, APIC_LVT_MASKED | APIC_LVT_EXTINT);
    ioapic_mask_all();
    set_handler(0x59, line_irq);
    ioapic_route(9, IOAPIC_FIXED | 0x59, this_cpu());
    testdev_line(9, 1);
    wait_until_ge(&line_irqs, 1, 100000);
    testdev_line(9, 0);
    check(line_irqs == 1, "a byte 1 at port 0x2009 raises line 9: IOAPIC pin 9 delivers (count %u)", line_irqs);
    outb(TESTDEV_IRQ_BASE + 30, 1);  /* no line 30: ignored */
    sti_delay(1000);
    check(line_irqs == 1, "a write for line 30 (no such GSI) changes nothing (count %u)", line_irqs);
    ioapic_mask_all();
}
