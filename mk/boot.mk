# Linux boot tests (tests/integration/boot_test.sh): the reference guest with
# the in-kernel irqchip and with the split irqchip, on 1 and 2 vCPUs. The
# guest kernel is built once and cached outside the clone
# (guests/linux/build-kernel.sh).
BOOT_TESTS := boot-test-kernel-1 boot-test-kernel-2 boot-test-split-1 boot-test-split-2
.PHONY: $(BOOT_TESTS)
$(BOOT_TESTS): boot-test-%: $(BUILD)/kvmini
	tests/integration/boot_test.sh $(subst -, ,$*)
TEST_TARGETS += $(BOOT_TESTS)
