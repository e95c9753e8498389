/* Harness self-test: a guest that fails on purpose. The matrix runner must
 * report it as FAIL (its own self-test passes when it does). */
#include "runtime.h"

void test_main(void)
{
    test_start("harness_fail", "fails on purpose");
    check(0, "deliberate failure: the runner must report this guest as failed");
}
