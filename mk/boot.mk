# Linux boot tests (tests/integration/boot_test.sh): the reference guest with
# the in-kernel, the split and the user irqchip, on 1 and 2 vCPUs. The
# guest kernel is built once and cached outside the clone
# (guests/linux/build-kernel.sh).
# The root file system on a virtio-blk disk, interrupting by MSI-X or INTx:
# each mode and CPU count once with each interrupt kind.
BOOT_TESTS := boot-test-kernel-1 boot-test-kernel-2 boot-test-split-1 boot-test-split-2 \
              boot-test-kernel-1-disk-msix boot-test-kernel-2-disk-intx \
              boot-test-split-1-disk-intx boot-test-split-2-disk-msix \
              boot-test-user-1 boot-test-user-2 boot-test-user-1-disk-msix boot-test-user-2-disk-intx
.PHONY: $(BOOT_TESTS)
# boot-test-MODE-CPUS[-disk-KIND] -> boot_test.sh MODE CPUS [disk-KIND]
$(BOOT_TESTS): boot-test-%: $(BUILD)/kvmini
	tests/integration/boot_test.sh $(word 1,$(subst -, ,$*)) $(word 2,$(subst -, ,$*)) \
	  $(if $(word 3,$(subst -, ,$*)),$(word 3,$(subst -, ,$*))-$(word 4,$(subst -, ,$*)))
# User mode with the guest's own timer (TSC-deadline LAPIC timer through
# kvmini's MSR exits and timer thread) rather than the PIT.
boot-test-user-2-lapic-tick: $(BUILD)/kvmini
	KVMINI_BOOT_TICK=lapic tests/integration/boot_test.sh user 2
# No -p at all, as a kvmtool user types it: the board's default parameters.
boot-test-kernel-1-no-params: $(BUILD)/kvmini
	KVMINI_BOOT_NO_PARAMS=1 tests/integration/boot_test.sh kernel 1
.PHONY: boot-test-user-2-lapic-tick boot-test-kernel-1-no-params
TEST_TARGETS += $(BOOT_TESTS) boot-test-user-2-lapic-tick boot-test-kernel-1-no-params
