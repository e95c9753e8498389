#!/usr/bin/env bash
# kvmini built with ThreadSanitizer ($KVMINI, default build/tsan/kvmini; see
# mk/sanitize.mk) runs the short test guests where several threads meet: the
# SMP guests in split and user modes (vCPU threads, the chipset's timer
# thread, kicks between vCPUs) and single-CPU guests with a second vCPU in
# user mode (an AP waiting for a SIPI while the BSP takes timer interrupts).
#
#   tsan_guests.sh [NAME:CPUS:MODE ...]      (default: the list below)
#
# A run passes when the guest passes (isa-debug-exit 0 and "RESULT: PASS")
# and TSan reported nothing; TSAN_OPTIONS (halt_on_error=1 unless set) makes
# the first report end kvmini. Prints and appends to $KVMINI_TEST_RESULTS one
# line per run: "PASS: tsan guest NAME MODE N vCPUs" or "FAIL: ... (why)",
# with the report in build/tsan/guests/NAME.MODE.N.kvmini.log.
set -uo pipefail
cd "$(dirname "$0")/../.."

kvmini=${KVMINI:-build/tsan/kvmini}
out=build/tsan/guests
timeout_s=${KVMINI_GUEST_TIMEOUT:-120}
mem_mib=32
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 exitcode=66}

runs=("$@")
if [ ${#runs[@]} -eq 0 ]; then
  runs=(ioapic_smp:2:split ioapic_smp:2:user lapic_smp:2:split lapic_smp:2:user
        lapic_timer:2:user pic:2:user)
  [ -f guests/tests/ipi_storm.c ] && runs+=(ipi_storm:2:split ipi_storm:2:user)
fi

mkdir -p "$out"
failed=0
record() {  # PASS|FAIL what [why]
  local line="$1: tsan guest $2${3:+ ($3)}"
  echo "$line"
  if [ -n "${KVMINI_TEST_RESULTS:-}" ]; then echo "$line" >> "$KVMINI_TEST_RESULTS"; fi
}

for run in "${runs[@]}"; do
  IFS=: read -r name cpus mode <<< "$run"
  what="$name $mode $cpus vCPUs"
  elf=build/guests/$name.elf
  console=$out/$name.$mode.$cpus.console.log
  err=$out/$name.$mode.$cpus.kvmini.log
  if [ ! -x "$kvmini" ] || [ ! -f "$elf" ]; then
    record FAIL "$what" "$kvmini or $elf not built"; failed=1; continue
  fi
  start=$(date +%s%N)
  timeout --kill-after=5 "$timeout_s" "$kvmini" run --test-devices --stats -k "$elf" -c "$cpus" --irqchip "$mode" \
    -m "$mem_mib" -p "mode=$mode mem=$mem_mib cpus=$cpus" </dev/null >"$console" 2>"$err"
  status=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  result=$(grep -a -m1 '^RESULT: ' "$console" | tr -d '\r')
  if grep -aq 'WARNING: ThreadSanitizer' "$err"; then
    # The kind of report and the first frame of each of its first two stacks.
    why="$(grep -a -m1 'WARNING: ThreadSanitizer' "$err" | sed 's/^WARNING: //; s/ (pid=[0-9]*)//'):"
    why+=" $(grep -a -E '^ +#0 ' "$err" | head -n 2 | sed -E 's/^ +#0 //; s/ \(.*//' | paste -sd '|' -); see $err"
    record FAIL "$what" "$why"; failed=1
    sed -n '/WARNING: ThreadSanitizer/,/^SUMMARY/p' "$err" | head -n 60 | sed 's/^/    /'
  elif [ "$status" = 124 ] || [ "$status" = 137 ]; then
    record FAIL "$what" "timed out after $timeout_s s; see $console"; failed=1
  elif [ "$status" = 1 ] && [[ $result == "RESULT: PASS"* ]]; then
    record PASS "$what" "$(printf '%d.%02d s' $((ms / 1000)) $((ms % 1000 / 10)))"
  else
    record FAIL "$what" "kvmini exit status $status, ${result:-no RESULT line}; see $console, $err"; failed=1
  fi
done
exit $failed
