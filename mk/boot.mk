# Linux boot tests (tests/integration/boot_test.sh): the reference guest with
# the in-kernel irqchip, on 1 and 2 vCPUs. The guest kernel is built once and
# cached outside the clone (guests/linux/build-kernel.sh).
.PHONY: boot-test-kernel-1 boot-test-kernel-2
boot-test-kernel-1: $(BUILD)/kvmini
	tests/integration/boot_test.sh kernel 1
boot-test-kernel-2: $(BUILD)/kvmini
	tests/integration/boot_test.sh kernel 2
TEST_TARGETS += boot-test-kernel-1 boot-test-kernel-2
