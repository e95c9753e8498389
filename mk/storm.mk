# The interrupt-storm test (tests/integration/storm_test.sh): a guest whose
# level line is never lowered (guests/tests/storm.c) must leave kvmini's
# console served, in every irqchip mode: Ctrl-A x still quits; and a guest
# halted with interrupts off forever still quits on Ctrl-A x and SIGTERM.
.PHONY: storm-test
storm-test: $(BUILD)/kvmini $(BUILD)/guests/storm.elf $(BUILD)/guests/harness_hang.elf
	tests/integration/storm_test.sh

TEST_TARGETS += storm-test
