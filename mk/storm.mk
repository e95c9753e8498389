# The interrupt-storm test (tests/integration/storm_test.sh): a guest whose
# level line is never lowered (guests/tests/storm.c) must leave kvmini's
# console served, in kernel and split irqchip modes: Ctrl-A x still quits.
.PHONY: storm-test
storm-test: $(BUILD)/kvmini $(BUILD)/guests/storm.elf
	tests/integration/storm_test.sh

TEST_TARGETS += storm-test
