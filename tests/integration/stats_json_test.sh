#!/usr/bin/env bash
# kvmini run --stats=json --stats-file: the report of a real run in each
# irqchip mode validates against tests/schema/run-report.schema.json, and
# says what happened: the mode asked for, the guest's exit status, the
# pc-testdev lines the guest raised (testdev guest, 2 vCPUs), KVM's own
# counters for each vCPU. Self-check: a report missing a field must fail
# the schema (so the validation can fail at all).
#
# Appends "PASS: stats json MODE" / "FAIL: ... (why)" to $KVMINI_TEST_RESULTS.
set -uo pipefail
cd "$(dirname "$0")/../.."

kvmini=${KVMINI:-build/kvmini}
schema=tests/schema/run-report.schema.json
out=build/stats-json
mkdir -p "$out"
failed=0

record() {
  echo "$1: $2${3:+ ($3)}"
  [ -n "${KVMINI_TEST_RESULTS:-}" ] && echo "$1: $2${3:+ ($3)}" >> "$KVMINI_TEST_RESULTS"
  [ "$1" = PASS ] || failed=1
}

# validate FILE MODE: prints nothing and exits 0 when the report is good.
validate() {
  python3 - "$schema" "$1" "$2" <<'PY'
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
report = json.load(open(sys.argv[2]))
mode = sys.argv[3]
jsonschema.validate(report, schema)
problems = []
if report["irqchip"] != mode: problems.append(f"irqchip {report['irqchip']} in a {mode} run")
if report["exit_status"] != 1: problems.append(f"exit status {report['exit_status']}, not 1 (the guest's pass)")
if report["vcpus"] != 2: problems.append("vcpus is not 2")
if report["exits"].get("io", 0) < 1: problems.append("no io exits counted")
if report["interrupts"]["gsi_raises"] < 1: problems.append("the guest's pc-testdev raise not counted")
if report["kvm_counters_available"] and len(report["kvm_vcpus"]) != 2: problems.append("KVM counters not per vCPU")
if problems: sys.exit("; ".join(problems))
PY
}

for mode in kernel split user; do
  f=$out/$mode.json
  rm -f "$f"
  "$kvmini" run --test-devices --stats=json --stats-file "$f" -k build/guests/testdev.elf -c 2 -m 32 \
    --irqchip "$mode" -p "mode=$mode mem=32 cpus=2" </dev/null >"$out/$mode.console.log" 2>"$out/$mode.kvmini.log"
  if [ ! -s "$f" ]; then record FAIL "stats json $mode" "no report written to $f"; continue; fi
  if why=$(validate "$f" "$mode" 2>&1); then record PASS "stats json $mode"; else
    record FAIL "stats json $mode" "$(echo "$why" | tail -n 1 | cut -c1-160)"; fi
done

# Self-check: the schema must reject a report without its interrupts.
broken=$out/broken.json
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); del r["interrupts"]; json.dump(r, open(sys.argv[2], "w"))' \
  "$out/kernel.json" "$broken" 2>/dev/null
if [ -s "$broken" ] && ! validate "$broken" kernel >/dev/null 2>&1; then record PASS "stats json schema rejects a broken report"
else record FAIL "stats json schema rejects a broken report" "a report without interrupts validated"; fi
exit $failed
