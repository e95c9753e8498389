/* Harness self-test: a guest that triple-faults. With an empty IDT, #UD
 * cannot be delivered (#GP), nor can that (#DF), nor that: shutdown (Intel
 * SDM vol. 3A 6.15, interrupt 8 "Double Fault": a fault during #DF
 * delivery shuts the processor down). kvmini prints "triple fault" and the
 * registers; the runner must show them. */
#include "runtime.h"

void test_main(void)
{
    test_start("harness_triple", "triple-faults on purpose (RAX=0x7e1f1e, RBX=0xdeadbeef to spot in the dump)");
    static const struct {
        u16 limit;
        u64 base;
    } __attribute__((packed)) empty = {0, 0};
    __asm__ volatile("lidt %0\n\t"
                     "mov $0x7e1f1e, %%eax\n\t"
                     "mov $0xdeadbeef, %%ebx\n\t"
                     "ud2"
                     :
                     : "m"(empty)
                     : "rax", "rbx");
    check(0, "still running after UD2 with an empty IDT");
}
