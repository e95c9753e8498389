# kvmini run --stats=json: real runs in every irqchip mode validate against
# tests/schema/run-report.schema.json (tests/integration/stats_json_test.sh).
.PHONY: stats-json-test
stats-json-test: $(BUILD)/kvmini $(BUILD)/guests/testdev.elf
	tests/integration/stats_json_test.sh

TEST_TARGETS += stats-json-test
