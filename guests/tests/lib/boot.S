/* Entry, GDT, page tables, the AP start-up trampoline and the interrupt stubs
 * of the test guests.
 *
 * The guests run in 64-bit mode (identity-mapped, CPL0). On this project's
 * software-KVM hosts (shared/HOST-KVM.md) KVM's instruction emulator cannot
 * complete IRET in 32-bit protected mode (KVM_EXIT_INTERNAL_ERROR on the
 * first return from an interrupt), while IRETQ in 64-bit mode works, as it
 * must for Linux. So the Multiboot entry (32-bit protected mode) switches to
 * long mode at once, and an AP goes real mode -> protected mode -> long mode.
 *
 * References: Multiboot Specification 0.6.96 sections 3.1 (header) and 3.2
 * (machine state at entry: EAX = 0x2BADB002, EBX = info, flat 32-bit
 * segments, interrupts off, the GDT not to be relied on); Intel SDM vol. 3A
 * 3.4.5 (segment descriptors), 4.5 (4-level paging: PML4E, PDPTE, 2-MByte
 * PDE), 9.8.5 (initializing IA-32e mode: PAE, CR3, EFER.LME, then CR0.PG),
 * 9.1.4 and 9.9.1 (an AP starts in real mode at CS = SIPI vector << 8,
 * IP = 0; switching to protected mode), 6.14 (64-bit IDT gates and the
 * interrupt stack frame), 6.3.1 (exceptions that push an error code). */

#include "layout.h"

#define MB_MAGIC 0x1badb002   /* Multiboot 3.1.2 */
#define MB_FLAGS 0x0          /* no requirements: ELF image, no modules, no video */

#define CR0_PE 0x00000001
#define CR0_PG 0x80000000
#define CR4_PAE 0x00000020
#define MSR_EFER 0xc0000080
#define EFER_LME 0x00000100

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .text
    .code32
    .globl _start
_start:
    cli
    cld
    mov %eax, %edi                  /* Multiboot magic: first argument of runtime_start */
    mov %ebx, %esi                  /* Multiboot info: second */
    lgdt gdt_desc
    mov $SEL_DATA, %ecx
    mov %ecx, %ds
    mov %ecx, %es
    mov %ecx, %ss
    mov $(cpu_stacks + STACK_SIZE), %esp
    call enter_long_mode
    ljmp $SEL_CODE64, $bsp_entry64

/* SDM 9.8.5: with paging off in protected mode, enable PAE, point CR3 at the
 * PML4, set EFER.LME, then enable paging; the next far jump to a 64-bit code
 * segment enters 64-bit mode. Keeps EDI/ESI. */
enter_long_mode:
    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    or $(CR0_PG | CR0_PE), %eax
    mov %eax, %cr0
    ret

    .code64
bsp_entry64:
    mov $SEL_DATA, %ecx
    mov %ecx, %ds
    mov %ecx, %es
    mov %ecx, %fs
    mov %ecx, %gs
    mov %ecx, %ss
    mov $(cpu_stacks + STACK_SIZE), %rsp
    call runtime_start              /* (magic, info): never returns */
1:  cli
    hlt
    jmp 1b

/* The AP start-up trampoline, copied to TRAMPOLINE_ADDR (below 1 MiB) before
 * INIT/SIPI. With DS = 0 every address in it is absolute: TRAMPOLINE_ADDR
 * plus the offset from ap_trampoline. */
    .globl ap_trampoline, ap_trampoline_end
    .code16
ap_trampoline:
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    lgdtl (TRAMPOLINE_ADDR + ap_gdt_desc - ap_trampoline)
    mov %cr0, %eax
    or $CR0_PE, %eax
    mov %eax, %cr0
    ljmpl $SEL_CODE32, $ap_entry32
    .align 4
ap_gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt
ap_trampoline_end:

    .code32
ap_entry32:
    mov $SEL_DATA, %ecx
    mov %ecx, %ds
    mov %ecx, %es
    mov %ecx, %ss
    /* A stack for the call below: the AP's own, by APIC ID (SDM 11.4.6: the
     * ID is in bits 31:24 of the register at 0xfee00020). */
    mov (LAPIC_BASE + 0x20), %eax
    shr $24, %eax
    cmp $MAX_CPUS, %eax
    jae 2f
    mov %eax, %ebx
    inc %eax
    shl $STACK_SHIFT, %eax
    add $cpu_stacks, %eax
    mov %eax, %esp
    call enter_long_mode
    ljmp $SEL_CODE64, $ap_entry64
2:  cli
    hlt
    jmp 2b

    .code64
ap_entry64:
    mov $SEL_DATA, %ecx
    mov %ecx, %ds
    mov %ecx, %es
    mov %ecx, %fs
    mov %ecx, %gs
    mov %ecx, %ss
    mov %esp, %esp                  /* zero-extends: same stack, now 64-bit */
    mov %ebx, %edi                  /* APIC ID */
    call ap_start                   /* never returns */
3:  cli
    hlt
    jmp 3b

/* 256 interrupt stubs, 16 bytes apart: push a 0 error code where the CPU does
 * not push one (SDM 6.3.1: vectors 8, 10-14, 17, 21, 29, 30 push one), push
 * the vector, join isr_common. */
    .globl isr_stubs
    .align 16
isr_stubs:
    .set vec, 0
    .rept 256
    .align 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

/* struct frame in runtime.h, from the stack pointer up: r15 ... rax, vector,
 * error code, then RIP, CS, RFLAGS, RSP, SS pushed by the CPU. The CPU
 * aligns RSP to 16 before pushing its 5 words (SDM 6.14.2), so after 2 + 15
 * more pushes the call below is made with RSP 16-byte aligned, as the ABI
 * wants. */
isr_common:
    push %rax
    push %rcx
    push %rdx
    push %rbx
    push %rbp
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    cld
    mov %rsp, %rdi
    call isr_dispatch
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rbp
    pop %rbx
    pop %rdx
    pop %rcx
    pop %rax
    add $16, %rsp
    iretq

    .data
    .align 8
    .globl gdt
gdt:
    .quad 0                         /* 0x00 null */
    .quad 0x00af9b000000ffff        /* 0x08 64-bit code (L=1), exec/read, accessed (SDM 3.4.5) */
    .quad 0x00cf93000000ffff        /* 0x10 flat data, read/write, accessed */
    .quad 0x00cf9b000000ffff        /* 0x18 flat 32-bit code: the AP's way from real mode */
gdt_end:
    .align 4
    .word 0
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt

/* Identity map of the low 4 GiB with 2-MByte pages (SDM 4.5, tables 4-15,
 * 4-17, 4-18): P | RW (| PS for the PDEs). RAM, the trampoline page, the
 * IOAPIC and the LAPIC all live there. */
#define PTE_P_RW 0x3
#define PDE_2M 0x83
    .align 4096
pml4:
    .quad pdpt + PTE_P_RW
    .fill 511, 8, 0
pdpt:
    .quad pd + PTE_P_RW
    .quad pd + 0x1000 + PTE_P_RW
    .quad pd + 0x2000 + PTE_P_RW
    .quad pd + 0x3000 + PTE_P_RW
    .fill 508, 8, 0
pd:
    .set page, 0
    .rept 2048
    .quad (page << 21) + PDE_2M
    .set page, page + 1
    .endr

    .bss
    .align 4096
    .globl cpu_stacks
cpu_stacks:
    .space STACK_SIZE * (MAX_CPUS + 1)
