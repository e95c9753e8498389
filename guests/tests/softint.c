/* Software interrupts and exceptions through the guest's own IDT: INT3,
 * INT n, #UD, #DE, #GP. On this project's software-KVM hosts KVM's emulator
 * cannot execute INT3/INT n at CPL0, and kvmini completes them (steps past
 * the instruction and injects the vector, vmm/vcpu_loop.cpp): this guest
 * checks that what the handler sees is what the CPU would have given it.
 *
 * Reference: Intel SDM vol. 2 "INT n/INTO/INT3/INT1" (the saved RIP is the
 * next instruction; an interrupt gate clears IF), vol. 3A 6.4.2 (software
 * interrupts do not involve the APIC), 6.15 (#UD, #DE, #GP are faults; #GP
 * for a bad segment selector carries the selector as its error code). */
#include "runtime.h"

static volatile u32 bp_count, n80_count, n41_count;
static volatile u64 bp_rip, n80_rip, bp_rflags, handler_rflags;
static volatile u32 n41_isr;

static void bp(struct frame *f)
{
    bp_count++;
    bp_rip = f->rip;
    bp_rflags = f->rflags;
    handler_rflags = read_flags();
}

static void int80(struct frame *f)
{
    n80_count++;
    n80_rip = f->rip;
    f->rax += 1;  /* a "system call" result, seen by the caller after IRETQ */
}

static void int41(struct frame *f)
{
    (void)f;
    n41_count++;
    n41_isr = lapic_isr(0x41) | lapic_irr(0x41);
}

/* Runs `insn` with fault recovery; returns the vector that faulted and the
 * RIP the CPU reported. */
#define FAULT(insn, rip_out)                                                        \
    ({                                                                              \
        u64 at_;                                                                    \
        fault_vector = -1;                                                          \
        __asm__ volatile("lea 1f(%%rip), %0\n\t"                                    \
                         "movq $2f, fault_fixup_rip(%%rip)\n"                       \
                         "1:\t" insn "\n"                                           \
                         "2:\tmovq $0, fault_fixup_rip(%%rip)"                      \
                         : "=&r"(at_)                                               \
                         :                                                          \
                         : "rax", "rdx", "rcx", "memory", "cc");                    \
        *(rip_out) = at_;                                                           \
        fault_vector;                                                               \
    })

void test_main(void)
{
    test_start("softint", "INT3 and INT n through the guest IDT (kvmini completes them here), #UD, #DE, #GP");
    set_handler(3, bp);
    set_handler(0x80, int80);
    set_handler(0x41, int41);

    u64 after, rbx_out;
    __asm__ volatile("mov $0x1122334455667788, %%rbx\n\t"
                     "int3\n"
                     "1:\tlea 1b(%%rip), %0\n\t"
                     "mov %%rbx, %1"
                     : "=r"(after), "=r"(rbx_out)
                     :
                     : "rbx", "memory");
    check(bp_count == 1, "INT3: the #BP handler (vector 3) ran once (%u)", bp_count);
    check(bp_rip == after, "INT3: saved RIP is the next instruction (%#llx, expected %#llx)", bp_rip, after);
    check(rbx_out == 0x1122334455667788ull, "INT3: registers survive the round trip (RBX %#llx)", rbx_out);

    sti();
    __asm__ volatile("int3" ::: "memory");
    cli();
    check(bp_count == 2, "INT3 with interrupts on: handled (%u)", bp_count);
    check((bp_rflags & EFLAGS_IF) != 0, "the saved RFLAGS has IF set (%#llx)", bp_rflags);
    check(!(handler_rflags & EFLAGS_IF), "the interrupt gate cleared IF in the handler (%#llx)", handler_rflags);

    u64 rax = 41;
    __asm__ volatile("int $0x80\n"
                     "1:\tlea 1b(%%rip), %1"
                     : "+a"(rax), "=r"(after)
                     :
                     : "memory");
    check(n80_count == 1, "INT 0x80: its handler ran once (%u)", n80_count);
    check(n80_rip == after, "INT 0x80: saved RIP is the next instruction (%#llx, expected %#llx)", n80_rip, after);
    check(rax == 42, "INT 0x80: a register changed in the frame comes back (RAX %llu)", rax);

    __asm__ volatile("int $0x41" ::: "memory");
    check(n41_count == 1, "INT 0x41 (a vector an IRQ could use): handled as a software interrupt (%u)", n41_count);
    check(!n41_isr && lapic_isr_count() == 0, "no LAPIC state involved (ISR/IRR bit %u)", n41_isr);

    u64 at;
    s32 v = FAULT("ud2", &at);
    check(v == 6, "UD2 raises #UD (vector %d)", v);
    v = FAULT("xor %%ecx, %%ecx; mov $1, %%eax; xor %%edx, %%edx; div %%ecx", &at);
    check(v == 0, "DIV by zero raises #DE (vector %d)", v);
    /* Selector 0x100: index 32, beyond the GDT's limit (SDM 3.4.2). */
    v = FAULT("mov $0x100, %%eax; mov %%eax, %%ds", &at);
    check(v == 13 && fault_error == 0x100, "loading DS with a selector beyond the GDT raises #GP(0x100) (vector %d, "
                                           "error %#llx)", v, fault_error);
    __asm__ volatile("mov %0, %%ds" : : "r"((u32)SEL_DATA));
}
