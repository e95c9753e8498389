/* The 8259A pair and the 8254 PIT. */
#include "runtime.h"

/* 8259A datasheet, "Initialization Command Words":
 *  ICW1 (A0 = 0, D4 = 1): D0 IC4 (ICW4 follows), D1 SNGL = 0 (cascaded),
 *       D3 LTIM = 0 (edge; on PC chipsets the ELCR at 0x4d0/0x4d1 decides);
 *  ICW2 (A0 = 1): vector base, bits 7:3;
 *  ICW3: master, bit mask of the inputs with a slave (IR2); slave, its ID (2);
 *  ICW4: D0 uPM = 1 (8086 mode), D1 AEOI.
 * ICW1 also clears the mask register and the ISR, and makes IR7 the lowest
 * priority; OCW1 afterwards masks every input. */
void pic_init(int auto_eoi)
{
    const u8 icw4 = auto_eoi ? 0x03 : 0x01;
    outb(PIC_MASTER_CMD, 0x11);
    outb(PIC_MASTER_DATA, PIC_MASTER_BASE);
    outb(PIC_MASTER_DATA, 1u << 2);
    outb(PIC_MASTER_DATA, icw4);
    outb(PIC_SLAVE_CMD, 0x11);
    outb(PIC_SLAVE_DATA, PIC_SLAVE_BASE);
    outb(PIC_SLAVE_DATA, 2);
    outb(PIC_SLAVE_DATA, icw4);
    pic_set_mask(0xffff);
}

/* OCW1: the interrupt mask register, read back through the data port. */
void pic_set_mask(u16 mask)
{
    outb(PIC_MASTER_DATA, (u8)mask);
    outb(PIC_SLAVE_DATA, (u8)(mask >> 8));
}

u16 pic_get_mask(void) { return (u16)(inb(PIC_MASTER_DATA) | inb(PIC_SLAVE_DATA) << 8); }

/* OCW3 RR = 1, RIS = 0/1: the next read of the command port returns IRR/ISR. */
u16 pic_irr(void)
{
    outb(PIC_MASTER_CMD, OCW3_READ_IRR);
    outb(PIC_SLAVE_CMD, OCW3_READ_IRR);
    return (u16)(inb(PIC_MASTER_CMD) | inb(PIC_SLAVE_CMD) << 8);
}

u16 pic_isr(void)
{
    outb(PIC_MASTER_CMD, OCW3_READ_ISR);
    outb(PIC_SLAVE_CMD, OCW3_READ_ISR);
    return (u16)(inb(PIC_MASTER_CMD) | inb(PIC_SLAVE_CMD) << 8);
}

void pic_eoi(u32 irq)
{
    if (irq >= 8) outb(PIC_SLAVE_CMD, OCW2_EOI);
    outb(PIC_MASTER_CMD, OCW2_EOI);
}

void pic_disable(void) { pic_set_mask(0xffff); }

/* 8254 datasheet, "Control Word Format": SC1:SC0 (7:6) counter, RW1:RW0
 * (5:4) = 11 lobyte then hibyte, M2:M0 (3:1) mode, BCD (0) = 0. */
void pit_start(u32 mode, u32 count)
{
    outb(PIT_CMD, (u8)(0x30 | (mode << 1)));
    outb(PIT_CH0, (u8)count);
    outb(PIT_CH0, (u8)(count >> 8));
}

/* Mode 0 with a count of 1: one last terminal count right away, then OUT
 * stays high and no further edge comes (a new control word alone does not
 * stop every implementation's timer; a new count does). */
void pit_stop(void) { pit_start(0, 1); }

/* Counter latch command: SC = 0, RW = 00. */
u32 pit_read_count(void)
{
    outb(PIT_CMD, 0x00);
    u32 lo = inb(PIT_CH0);
    u32 hi = inb(PIT_CH0);
    return lo | hi << 8;
}

/* Read-back command (7:6 = 11), COUNT# = 1 (no count latch), STATUS# = 0,
 * CNT0 (bit 1). Status byte: 7 OUT, 6 null count, 5:4 RW, 3:1 mode, 0 BCD. */
u8 pit_read_status(void)
{
    outb(PIT_CMD, 0xe2);
    return inb(PIT_CH0);
}
