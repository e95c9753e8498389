/* Fixed addresses and sizes of the test guests, shared by C and assembly. */
#pragma once

#define SEL_CODE64 0x08
#define SEL_DATA 0x10
#define SEL_CODE32 0x18

#define MAX_CPUS 8
#define STACK_SHIFT 13                   /* 8 KiB per CPU */
#define STACK_SIZE (1 << STACK_SHIFT)

/* Below 1 MiB and clear of what kvmini's loader writes there (boot GDT/IDT at
 * 0x500, command line at 0x20000, Multiboot info at 0x30000, MP table at
 * 0xf0000): page 1. SIPI vector = address >> 12 (SDM vol. 3A 11.6.1, "Start-Up"). */
#define TRAMPOLINE_ADDR 0x1000

#define LAPIC_BASE 0xfee00000            /* SDM vol. 3A 11.4.1 default base */
#define IOAPIC_BASE 0xfec00000           /* 82093AA default */
