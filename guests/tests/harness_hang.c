/* Harness self-test: a guest that never ends (interrupts off, HLT forever:
 * no CPU time is burnt). The runner's timeout must stop it and report it. */
#include "runtime.h"

void test_main(void)
{
    test_start("harness_hang", "hangs on purpose");
    for (;;) __asm__ volatile("cli; hlt");
}
