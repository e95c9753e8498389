/* PCI configuration space through configuration mechanism #1 (PCI Local Bus
 * Specification 3.0, 3.2.2.3.2): CONFIG_ADDRESS at 0xcf8 (enable bit 31, bus
 * 23:16, device 15:11, function 10:8, dword register 7:2), CONFIG_DATA at
 * 0xcfc..0xcff. Every access is two port exits (~20 us here), so callers
 * read what they need once. */
#include "runtime.h"

#define CONFIG_ADDRESS 0xcf8
#define CONFIG_DATA 0xcfc

static void select(u32 bdf, u32 off) { outl(CONFIG_ADDRESS, 0x80000000u | bdf << 8 | (off & 0xfc)); }

u32 pci_read32(u32 bdf, u32 off)
{
    select(bdf, off);
    return inl(CONFIG_DATA);
}

u16 pci_read16(u32 bdf, u32 off)
{
    select(bdf, off);
    return inw(CONFIG_DATA + (off & 2));
}

u8 pci_read8(u32 bdf, u32 off)
{
    select(bdf, off);
    return inb(CONFIG_DATA + (off & 3));
}

void pci_write32(u32 bdf, u32 off, u32 v)
{
    select(bdf, off);
    outl(CONFIG_DATA, v);
}

void pci_write16(u32 bdf, u32 off, u16 v)
{
    select(bdf, off);
    outw(CONFIG_DATA + (off & 2), v);
}

int pci_find(u16 vendor, u16 device, u32 *bdf)
{
    const u32 want = (u32)device << 16 | vendor;
    for (u32 dev = 0; dev < 32; dev++) {
        u32 id = pci_read32(PCI_BDF(0, dev, 0), PCI_VENDOR_ID);
        if ((id & 0xffff) == 0xffff) continue;  /* no device in this slot */
        u32 functions = (pci_read8(PCI_BDF(0, dev, 0), PCI_HEADER_TYPE) & 0x80) ? 8 : 1;
        for (u32 fn = 0; fn < functions; fn++) {
            if (fn) id = pci_read32(PCI_BDF(0, dev, fn), PCI_VENDOR_ID);
            if (id == want) {
                *bdf = PCI_BDF(0, dev, fn);
                return 1;
            }
        }
    }
    return 0;
}

u8 pci_find_cap(u32 bdf, u8 id, u8 after)
{
    u8 at;
    if (after) {
        at = pci_read8(bdf, after + 1) & 0xfc;
    } else {
        if (!(pci_read16(bdf, PCI_STATUS) & PCI_STATUS_CAP_LIST)) return 0;
        at = pci_read8(bdf, PCI_CAP_PTR) & 0xfc;
    }
    for (u32 n = 0; at && n < 48; n++) {
        u16 head = pci_read16(bdf, at);  /* ID, next */
        if ((head & 0xff) == id) return at;
        at = (u8)(head >> 8) & 0xfc;
    }
    return 0;
}

u64 pci_bar(u32 bdf, u32 bar)
{
    u32 lo = pci_read32(bdf, PCI_BAR0 + 4 * bar);
    if (lo & 1) return lo & ~3u;                  /* I/O */
    if ((lo & 6) == 4 && bar < 5)                 /* 64-bit memory */
        return (u64)pci_read32(bdf, PCI_BAR0 + 4 * (bar + 1)) << 32 | (lo & ~0xfu);
    return lo & ~0xfu;
}
