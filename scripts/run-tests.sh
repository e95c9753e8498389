#!/usr/bin/env bash
# The README's test command: set-up, build, then every test (`make test`):
# unit tests, the test-guest matrix, the Linux boot tests. Prints one summary
# line "tests: N passed, N failed" at the end and exits non-zero if any test
# failed or if no test ran.
set -uo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh || { echo "setup failed"; exit 1; }
mkdir -p build
results=build/test-results.txt
: > "$results"

make -j"$(nproc)" all build/unit-tests || { echo "build failed"; echo "tests: 0 passed, 1 failed"; exit 1; }
KVMINI_TEST_RESULTS="$PWD/$results" make -k test 2>&1 | tee build/test.log
make_status=${PIPESTATUS[0]}

# GoogleTest's per-test lines, and the PASS:/FAIL: lines of our own suites
# (test-guest matrix, boot tests), which they also append to $results.
unit_pass=$(grep -c '^\[       OK \]' build/test.log || true)
unit_fail=$(grep -cE '^\[  FAILED  \] [A-Za-z0-9_/]+\.[A-Za-z0-9_/]+ \(' build/test.log || true)
other_pass=$(grep -c '^PASS: ' "$results" || true)
other_fail=$(grep -c '^FAIL: ' "$results" || true)
passed=$((unit_pass + other_pass))
failed=$((unit_fail + other_fail))
if [ "$make_status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi

echo
echo "unit tests: $unit_pass passed, $unit_fail failed; other suites:"
cat "$results"
echo "tests: $passed passed, $failed failed"
if [ "$passed" -eq 0 ] || [ "$failed" -ne 0 ]; then exit 1; fi
exit 0
