/* MSI-X from a real PCI device: kvmini's virtio-blk (transitional, 1af4:1001,
 * run with -d IMAGE). The guest finds it on bus 0, walks its capability list
 * to MSI-X, points table entry 1 at this CPU (vector V_QUEUE), enables MSI-X,
 * sets up virtqueue 0 through the modern interface with that entry as its
 * vector, and makes the device interrupt by completing VIRTIO_BLK_T_GET_ID
 * requests. Then: per-vector mask (no message, PBA bit set; unmasking sends
 * it and clears the bit), the function mask (the same, for all vectors), and
 * with MSI-X disabled the fall-back to INTx (ISR bit, PCI status interrupt
 * bit; the IOAPIC pin stays masked).
 *
 * Reference: PCI Local Bus Specification 3.0, 6.7 (capability list), 6.8.2
 * (MSI-X capability: Message Control enable bit 15, function mask bit 14,
 * table size 10:0 = N-1; Table and PBA Offset/BIR; table entries of 16
 * bytes, vector control bit 0 = mask, set at reset; a message signalled while
 * masked sets its PBA bit and is sent, clearing the bit, once unmasked).
 * Intel SDM vol. 3A 11.11 (message address 0xFEE00000 | destination ID << 12,
 * data = vector, fixed, edge). Virtio 1.2: 3.1.1 (driver initialisation),
 * 4.1.4 (virtio PCI capabilities), 4.1.4.3 (common configuration), 4.1.4.4
 * (notification: cap.offset + queue_notify_off * notify_off_multiplier),
 * 4.1.5.1.2 (MSI-X vector configuration), 2.7 (split virtqueue), 5.2.6
 * (block requests: GET_ID writes 20 bytes of ID, then the status byte). */
#include "runtime.h"

#define V_QUEUE 0x51
#define V_CONFIG 0x52
#define ENTRY_CONFIG 0  /* MSI-X table entry for configuration changes */
#define ENTRY_QUEUE 1   /* ... and for queue 0 */

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_BLK_TRANSITIONAL 0x1001

/* virtio_pci_cap (4.1.4) fields, offsets within the capability. */
#define VCAP_CFG_TYPE 3
#define VCAP_BAR 4
#define VCAP_OFFSET 8
#define VCAP_NOTIFY_MULTIPLIER 16
#define VCAP_COMMON 1
#define VCAP_NOTIFY 2
#define VCAP_ISR 3
/* Common configuration (4.1.4.3). */
#define CC_DEVICE_FEATURE_SELECT 0x00
#define CC_DEVICE_FEATURE 0x04
#define CC_DRIVER_FEATURE_SELECT 0x08
#define CC_DRIVER_FEATURE 0x0c
#define CC_CONFIG_MSIX_VECTOR 0x10
#define CC_DEVICE_STATUS 0x14
#define CC_QUEUE_SELECT 0x16
#define CC_QUEUE_SIZE 0x18
#define CC_QUEUE_MSIX_VECTOR 0x1a
#define CC_QUEUE_ENABLE 0x1c
#define CC_QUEUE_NOTIFY_OFF 0x1e
#define CC_QUEUE_DESC 0x20
#define CC_QUEUE_DRIVER 0x28
#define CC_QUEUE_DEVICE 0x30
/* Device status (2.1). */
#define S_ACKNOWLEDGE 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 64

#define QSIZE 4
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define BLK_T_GET_ID 8
#define BLK_ID_BYTES 20

struct vdesc {
    u64 addr;
    u32 len;
    u16 flags, next;
};
static struct vdesc desc[QSIZE] __attribute__((aligned(16)));
static volatile struct {
    u16 flags, idx, ring[QSIZE], used_event;
} avail __attribute__((aligned(2)));
static volatile struct {
    u16 flags, idx;
    struct {
        u32 id, len;
    } ring[QSIZE];
    u16 avail_event;
} used __attribute__((aligned(4)));
static struct {
    u32 type, reserved;
    u64 sector;
} req;
static volatile u8 id_buf[BLK_ID_BYTES];
static volatile u8 status_byte;

static volatile u32 queue_irqs, config_irqs, bad_vector;

static void queue_irq(struct frame *f)
{
    if (f->vector != V_QUEUE) bad_vector = (u32)f->vector;
    queue_irqs++;
    lapic_eoi();
}

static void config_irq(struct frame *f)
{
    (void)f;
    config_irqs++;
    lapic_eoi();
}

static u32 bdf;
static u8 msix_cap;
static unsigned long common, notify, isr, table, pba;
static u32 notify_mult;
static u16 avail_next;

static unsigned long entry(u32 n, u32 field) { return table + n * MSIX_ENTRY_SIZE + field; }
static u32 pba_bits(void) { return mmio_read32(pba); }

/* One GET_ID request in descriptors 0-2, made available and notified. */
static void submit(void)
{
    status_byte = 0xff;
    avail.ring[avail_next % QSIZE] = 0;
    barrier();
    avail.idx = ++avail_next;
    barrier();
    mmio_write16(notify, 0);
}

/* The used ring reaching `idx` (the device works on its own thread). */
static int wait_used(u16 idx, u32 us)
{
    u64 end = rdtsc() + us_to_tsc(us);
    while (used.idx != idx)
        if (rdtsc() >= end) return used.idx == idx;
    return 1;
}

static void find_device(void)
{
    if (!pci_find(VIRTIO_VENDOR, VIRTIO_BLK_TRANSITIONAL, &bdf))
        skip("no virtio-blk 1af4:1001 on bus 0 (kvmini run -d IMAGE adds one)");
    check(1, "1af4:1001 found by scanning bus 0: 00:%02x.%u", bdf >> 3 & 0x1f, bdf & 7);
    u16 cmd = pci_read16(bdf, PCI_COMMAND);
    check(cmd & PCI_CMD_MEMORY, "memory decoding enabled (command %#x)", cmd);
    pci_write16(bdf, PCI_COMMAND, cmd | PCI_CMD_MEMORY | PCI_CMD_BUS_MASTER);

    msix_cap = pci_find_cap(bdf, PCI_CAP_ID_MSIX, 0);
    if (!check(msix_cap != 0, "the capability list has MSI-X (at %#x)", msix_cap)) fail_now("no MSI-X");
    u16 ctrl = pci_read16(bdf, msix_cap + MSIX_CONTROL);
    u32 tbl = pci_read32(bdf, msix_cap + MSIX_TABLE), pb = pci_read32(bdf, msix_cap + MSIX_PBA);
    u64 tbar = pci_bar(bdf, tbl & 7), pbar = (pb & 7) == (tbl & 7) ? tbar : pci_bar(bdf, pb & 7);
    table = (unsigned long)(tbar + (tbl & ~7u));
    pba = (unsigned long)(pbar + (pb & ~7u));
    check((ctrl & 0x7ff) + 1 >= 2 && !(ctrl & (MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK)) && tbar &&
              tbar < 0x100000000ull && pbar < 0x100000000ull,
          "MSI-X: %u vectors, disabled and function mask clear at reset, table BAR%u+%#x at %#lx, PBA BAR%u+%#x",
          (ctrl & 0x7ff) + 1, tbl & 7, tbl & ~7u, table, pb & 7, pb & ~7u);
    if (!tbar || tbar >= 0x100000000ull || pbar >= 0x100000000ull) fail_now("MSI-X BAR outside the identity map");

    /* The modern interface's common and notify structures (4.1.4). */
    u32 mult = 0;
    for (u8 at = 0, n = 0; n < 8 && (at = pci_find_cap(bdf, PCI_CAP_ID_VENDOR, at)); n++) {
        u8 type = pci_read8(bdf, at + VCAP_CFG_TYPE);
        if (type != VCAP_COMMON && type != VCAP_NOTIFY && type != VCAP_ISR) continue;
        u64 base = pci_bar(bdf, pci_read8(bdf, at + VCAP_BAR)) + pci_read32(bdf, at + VCAP_OFFSET);
        if (type == VCAP_COMMON && !common) common = (unsigned long)base;
        if (type == VCAP_ISR && !isr) isr = (unsigned long)base;
        if (type == VCAP_NOTIFY && !notify) {
            notify = (unsigned long)base;
            mult = pci_read32(bdf, at + VCAP_NOTIFY_MULTIPLIER);
        }
    }
    if (!check(common && notify && isr && common < 0x100000000ull && notify < 0x100000000ull &&
                   isr < 0x100000000ull,
               "virtio common cfg at %#lx, notify at %#lx (multiplier %u), ISR at %#lx", common, notify, mult, isr))
        fail_now("no usable virtio modern interface");
    notify_mult = mult;  /* queue 0's notify_off is added in setup_queue */
}

static void program_msix(void)
{
    u32 e0 = mmio_read32(entry(ENTRY_CONFIG, 12)), e1 = mmio_read32(entry(ENTRY_QUEUE, 12));
    check((e0 & e1 & MSIX_ENTRY_VECTOR_MASKED) != 0, "table entries masked at reset (vector control %#x, %#x)", e0,
          e1);
    const u32 addr = LAPIC_BASE | this_cpu() << 12;  /* fixed, physical destination */
    mmio_write32(entry(ENTRY_CONFIG, 0), addr);
    mmio_write32(entry(ENTRY_CONFIG, 4), 0);
    mmio_write32(entry(ENTRY_CONFIG, 8), V_CONFIG);
    mmio_write32(entry(ENTRY_CONFIG, 12), 0);
    mmio_write32(entry(ENTRY_QUEUE, 0), addr);
    mmio_write32(entry(ENTRY_QUEUE, 4), 0);
    mmio_write32(entry(ENTRY_QUEUE, 8), V_QUEUE);
    mmio_write32(entry(ENTRY_QUEUE, 12), 0);
    u32 a = mmio_read32(entry(ENTRY_QUEUE, 0)), d = mmio_read32(entry(ENTRY_QUEUE, 8));
    u32 c = mmio_read32(entry(ENTRY_QUEUE, 12));
    check(a == addr && d == V_QUEUE && c == 0, "entry %u reads back: address %#x, data %#x, vector control %#x",
          ENTRY_QUEUE, a, d, c);
    pci_write16(bdf, msix_cap + MSIX_CONTROL, MSIX_CONTROL_ENABLE);
    u16 ctrl = pci_read16(bdf, msix_cap + MSIX_CONTROL);
    check((ctrl & (MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK)) == MSIX_CONTROL_ENABLE,
          "MSI-X enabled (message control %#x)", ctrl);
}

/* Driver initialisation (virtio 1.2 3.1.1) with VIRTIO_F_VERSION_1 only (no
 * EVENT_IDX: the device interrupts for every used buffer), queue 0 of size
 * QSIZE on entry ENTRY_QUEUE. */
static void setup_queue(void)
{
    mmio_write8(common + CC_DEVICE_STATUS, 0);
    mmio_write8(common + CC_DEVICE_STATUS, S_ACKNOWLEDGE);
    mmio_write8(common + CC_DEVICE_STATUS, S_ACKNOWLEDGE | S_DRIVER);
    mmio_write32(common + CC_DEVICE_FEATURE_SELECT, 1);
    u32 hi = mmio_read32(common + CC_DEVICE_FEATURE);
    mmio_write32(common + CC_DRIVER_FEATURE_SELECT, 0);
    mmio_write32(common + CC_DRIVER_FEATURE, 0);
    mmio_write32(common + CC_DRIVER_FEATURE_SELECT, 1);
    mmio_write32(common + CC_DRIVER_FEATURE, 1);  /* bit 32: VERSION_1 */
    mmio_write8(common + CC_DEVICE_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
    u8 st = mmio_read8(common + CC_DEVICE_STATUS);
    check((hi & 1) && (st & S_FEATURES_OK), "virtio: VERSION_1 offered and accepted (status %#x)", st);

    mmio_write16(common + CC_CONFIG_MSIX_VECTOR, ENTRY_CONFIG);
    mmio_write16(common + CC_QUEUE_SELECT, 0);
    u16 max = mmio_read16(common + CC_QUEUE_SIZE);
    mmio_write16(common + CC_QUEUE_SIZE, QSIZE);
    mmio_write16(common + CC_QUEUE_MSIX_VECTOR, ENTRY_QUEUE);
    u16 cv = mmio_read16(common + CC_CONFIG_MSIX_VECTOR), qv = mmio_read16(common + CC_QUEUE_MSIX_VECTOR);
    check(cv == ENTRY_CONFIG && qv == ENTRY_QUEUE && max >= QSIZE,
          "virtio: config vector %u, queue 0 vector %u, queue 0 size %u of %u", cv, qv, QSIZE, max);
    mmio_write32(common + CC_QUEUE_DESC, (u32)(unsigned long)desc);
    mmio_write32(common + CC_QUEUE_DESC + 4, 0);
    mmio_write32(common + CC_QUEUE_DRIVER, (u32)(unsigned long)&avail);
    mmio_write32(common + CC_QUEUE_DRIVER + 4, 0);
    mmio_write32(common + CC_QUEUE_DEVICE, (u32)(unsigned long)&used);
    mmio_write32(common + CC_QUEUE_DEVICE + 4, 0);
    mmio_write16(common + CC_QUEUE_ENABLE, 1);
    u16 noff = mmio_read16(common + CC_QUEUE_NOTIFY_OFF);
    notify += (unsigned long)noff * notify_mult;

    req.type = BLK_T_GET_ID;
    desc[0] = (struct vdesc){(u64)(unsigned long)&req, sizeof(req), DESC_F_NEXT, 1};
    desc[1] = (struct vdesc){(u64)(unsigned long)id_buf, BLK_ID_BYTES, DESC_F_NEXT | DESC_F_WRITE, 2};
    desc[2] = (struct vdesc){(u64)(unsigned long)&status_byte, 1, DESC_F_WRITE, 0};
    mmio_write8(common + CC_DEVICE_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    st = mmio_read8(common + CC_DEVICE_STATUS);
    check(mmio_read16(common + CC_QUEUE_ENABLE) == 1 && (st & S_DRIVER_OK) && !(st & S_NEEDS_RESET),
          "virtio: queue 0 enabled, DRIVER_OK (status %#x)", st);
}

void test_main(void)
{
    test_start("msi", "MSI-X from virtio-blk 1af4:1001: delivery, per-vector mask and PBA, function mask");
    ioapic_mask_all();  /* INTx (IOAPIC pin) cannot pass for an MSI */
    set_handler(V_QUEUE, queue_irq);
    set_handler(V_CONFIG, config_irq);
    find_device();
    program_msix();
    setup_queue();
    const u32 bit = 1u << ENTRY_QUEUE;

    /* 1. Delivery: one request, one message on V_QUEUE. */
    submit();
    int got = hlt_until_ge(&queue_irqs, 1, 1000000);
    check(got, "request 1 (GET_ID, notify): the queue's MSI-X interrupt arrives");
    hlt_for(2000);
    check(queue_irqs == 1 && !bad_vector, "it arrived once, on vector %#x (count %u%s)", V_QUEUE, queue_irqs,
          bad_vector ? ", and on a wrong vector" : "");
    char id[BLK_ID_BYTES + 1];
    for (u32 i = 0; i < BLK_ID_BYTES; i++) id[i] = (char)id_buf[i];
    id[BLK_ID_BYTES] = 0;
    check(used.idx == 1 && used.ring[0].id == 0 && used.ring[0].len == BLK_ID_BYTES + 1 && status_byte == 0,
          "used ring has the request (idx %u, id %u, len %u), status %u, ID \"%s\"", used.idx, used.ring[0].id,
          used.ring[0].len, status_byte, id);
    check(!(pba_bits() & bit), "PBA bit %u clear after delivery (PBA %#x)", ENTRY_QUEUE, pba_bits());

    /* 2. Per-vector mask: the message is held in the PBA until unmasked. */
    mmio_write32(entry(ENTRY_QUEUE, 12), MSIX_ENTRY_VECTOR_MASKED);
    submit();
    int done = wait_used(2, 1000000);
    hlt_for(3000);
    u32 p = pba_bits();
    check(done && queue_irqs == 1, "entry %u masked: request 2 completes (used idx %u), no interrupt (count %u)",
          ENTRY_QUEUE, used.idx, queue_irqs);
    check(p & bit, "masked: PBA bit %u set (PBA %#x)", ENTRY_QUEUE, p);
    mmio_write32(entry(ENTRY_QUEUE, 12), 0);  /* IF=0: the message waits in IRR */
    p = pba_bits();
    check(!(p & bit), "unmasked: PBA bit %u clear (PBA %#x)", ENTRY_QUEUE, p);
    got = hlt_until_ge(&queue_irqs, 2, 1000000);
    hlt_for(2000);
    check(got && queue_irqs == 2, "unmasked: the pending interrupt arrives, once (count %u)", queue_irqs);

    /* 3. Function mask: the same for every vector, entries untouched. */
    pci_write16(bdf, msix_cap + MSIX_CONTROL, MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK);
    submit();
    done = wait_used(3, 1000000);
    hlt_for(3000);
    p = pba_bits();
    check(done && queue_irqs == 2, "function masked: request 3 completes (used idx %u), no interrupt (count %u)",
          used.idx, queue_irqs);
    check((p & bit) && !(mmio_read32(entry(ENTRY_QUEUE, 12)) & MSIX_ENTRY_VECTOR_MASKED),
          "function masked: PBA bit %u set (PBA %#x), the entry's own mask bit still clear", ENTRY_QUEUE, p);
    pci_write16(bdf, msix_cap + MSIX_CONTROL, MSIX_CONTROL_ENABLE);
    p = pba_bits();
    check(!(p & bit), "function mask cleared: PBA bit %u clear (PBA %#x)", ENTRY_QUEUE, p);
    got = hlt_until_ge(&queue_irqs, 3, 1000000);
    hlt_for(2000);
    check(got && queue_irqs == 3, "function mask cleared: the pending interrupt arrives, once (count %u)", queue_irqs);

    /* Nothing else: no config-change message, no INTx, no stray vector. */
    u16 status = pci_read16(bdf, PCI_STATUS);
    check(config_irqs == 0 && !bad_vector && unexpected_total() == 0 && !(status & PCI_STATUS_INTERRUPT),
          "no other interrupts (config %u, unexpected %u, PCI status %#x)", config_irqs, unexpected_total(), status);

    /* 4. MSI-X disabled: the device falls back to INTx (4.1.5.3/4.1.5.4:
     * ISR bit 0 and the INTx level, lowered by reading ISR). The IOAPIC pin
     * stays masked; the level shows in the PCI status register. */
    pci_write16(bdf, msix_cap + MSIX_CONTROL, 0);
    submit();
    done = wait_used(4, 1000000);
    hlt_for(2000);
    status = pci_read16(bdf, PCI_STATUS);
    u8 isr_bits = mmio_read8(isr);
    u16 status_after = pci_read16(bdf, PCI_STATUS);
    check(done && queue_irqs == 3, "MSI-X disabled: request 4 completes (used idx %u), no message (count %u)",
          used.idx, queue_irqs);
    check((status & PCI_STATUS_INTERRUPT) && (isr_bits & 1) && !(status_after & PCI_STATUS_INTERRUPT),
          "MSI-X disabled: INTx instead (PCI status %#x, ISR %#x, status %#x after reading ISR)", status, isr_bits,
          status_after);
    mmio_write8(common + CC_DEVICE_STATUS, 0);  /* reset the device */
}
