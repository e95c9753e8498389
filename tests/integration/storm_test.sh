#!/usr/bin/env bash
# An interrupt storm must not starve kvmini's other threads or the terminal.
# For each irqchip mode (kernel, split, user) the storm guest (guests/tests/storm.c:
# IOAPIC pin 10 level-triggered, raised through pc-testdev and never lowered,
# the handler only counts and EOIs) runs with kvmini's stdin a FIFO this
# script holds open:
#
#   build/kvmini run --test-devices --stats -k build/guests/storm.elf -m 32 --irqchip MODE
#
# Checked per mode:
#   - the console shows "storm: running" (100 interrupts delivered) and then a
#     progress line with at least $min_count interrupts, within 30 s;
#   - Ctrl-A x (bytes 0x01 0x78) written to stdin during the storm ends kvmini
#     within 5 s, with status 0 and "quit from the console (Ctrl-A x)" on
#     stderr: the terminal thread is served while the vCPU is stormed;
#   - the storm was real: the guest's count (above), and in split mode, where
#     kvmini's IOAPIC delivers each interrupt as an MSI, --stats msis too; in
#     user mode, where kvmini's LAPIC takes them, --stats injected.
#
# Then, per mode, a guest halted with interrupts off forever
# (guests/tests/harness_hang.c: cli; hlt): Ctrl-A x must end kvmini with
# status 0 and SIGTERM with 143, each within 5 s (in user mode the vCPU
# thread sleeps in kvmini, not in KVM, so this is kvmini's own wake-up).
#
#   storm_test.sh [--modes "kernel split user"] [--quit BYTES]
#
# --quit gives the bytes sent to quit, as printf(1) escapes (default
# '\001x'); a wrong sequence must make the test fail (its self-check).
# Logs in build/storm-test/MODE.{console,kvmini}.log. Appends "PASS: storm
# MODE" / "PASS: halted forever MODE quit|sigterm" or "FAIL: ... (why)" to
# $KVMINI_TEST_RESULTS if set; exits 1
# if any mode failed. Environment: KVMINI (default build/kvmini).
set -uo pipefail
cd "$(dirname "$0")/../.."

kvmini=${KVMINI:-build/kvmini}
elf=build/guests/storm.elf
out=build/storm-test
modes=(kernel split user)
hang_elf=build/guests/harness_hang.elf
quit='\001x'
start_timeout_s=30
quit_timeout_s=5
min_count=5000

while (($#)); do
  case $1 in
    --modes) read -r -a modes <<< "$2"; shift ;;
    --quit) quit=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "storm_test.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

mkdir -p "$out"
failed=0
pid=
fifo=

result() {  # PASS|FAIL mode [why]
  record "$1" "storm $2" "${3:-}"
}
record() {  # PASS|FAIL name [why]
  echo "$1: $2${3:+ ($3)}"
  [ -n "${KVMINI_TEST_RESULTS:-}" ] && echo "$1: $2${3:+ ($3)}" >> "$KVMINI_TEST_RESULTS"
  [ "$1" = PASS ] || failed=1
}

# Ends kvmini (if still running) and waits for it, boundedly.
stop_kvmini() {
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  pid=
}
cleanup() {
  stop_kvmini
  exec 3>&- 2>/dev/null
  [ -n "$fifo" ] && rm -f "$fifo"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# True once kvmini ($pid) has exited, false if it still runs after $1 s.
exits_within() {
  local _
  for _ in $(seq $(($1 * 20))); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  ! kill -0 "$pid" 2>/dev/null
}

# The highest interrupt count in the guest's progress lines.
guest_count() {
  sed -n 's/^storm: \([0-9]*\) interrupts in .*/\1/p' "$console" | tr -d '\r' | sort -n | tail -n 1
}

run_mode() {
  local mode=$1
  console=$out/$mode.console.log
  err=$out/$mode.kvmini.log
  : >"$console"; : >"$err"
  fifo=$(mktemp -u "${TMPDIR:-/tmp}/kvmini-storm.XXXXXX")
  mkfifo "$fifo" || { result FAIL "$mode" "mkfifo failed"; return; }
  # Opened read-write, the FIFO never blocks and never reports end-of-file.
  exec 3<>"$fifo"
  # A safety net well above the bounded waits below.
  timeout --kill-after=5 120 "$kvmini" run --test-devices --stats -k "$elf" -m 32 --irqchip "$mode" \
    -p "mode=$mode" <"$fifo" >"$console" 2>"$err" &
  pid=$!

  # The storm is on, and past min_count interrupts.
  local deadline=$((SECONDS + start_timeout_s)) running=0 n=0
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"; local st=$?; pid=
      result FAIL "$mode" "kvmini exited (status $st) before the storm was established; kvmini: $(grep -a 'kvmini: ' "$err" | tail -n 1 | sed 's/.*kvmini: //' | cut -c1-100)"
      return
    fi
    ((running)) || ! grep -aq '^storm: running' "$console" || running=1
    n=$(guest_count); n=${n:-0}
    ((running && n >= min_count)) && break
    if ((SECONDS >= deadline)); then
      stop_kvmini
      if ((running)); then
        result FAIL "$mode" "storm running but only $n interrupts counted after $start_timeout_s s"
      else
        result FAIL "$mode" "no 'storm: running' within $start_timeout_s s; last console line: $(grep -av '^\s*$' "$console" | tail -n 1 | cut -c1-100)"
      fi
      return
    fi
    sleep 0.1
  done

  # Quit from the console, in the middle of the storm.
  local t0=$(date +%s%N) status=
  printf "$quit" >&3
  if ! exits_within "$quit_timeout_s"; then
    stop_kvmini
    result FAIL "$mode" "kvmini still running $quit_timeout_s s after Ctrl-A x: its terminal thread not served during the storm"
    return
  fi
  wait "$pid"; status=$?; pid=
  local quit_ms=$((($(date +%s%N) - t0) / 1000000))
  exec 3>&-
  rm -f "$fifo"; fifo=

  if [ "$status" != 0 ]; then
    result FAIL "$mode" "kvmini exit status $status after Ctrl-A x (0 expected); kvmini: $(grep -a 'kvmini: ' "$err" | tail -n 1 | sed 's/.*kvmini: //' | cut -c1-100)"
    return
  fi
  if ! grep -aq 'quit from the console (Ctrl-A x)' "$err"; then
    result FAIL "$mode" "no 'quit from the console (Ctrl-A x)' in $err"
    return
  fi
  local msis
  msis=$(sed -n 's/.*interrupts:.* msis=\([0-9]*\).*/\1/p' "$err" | head -n 1)
  if [ -z "$msis" ]; then
    result FAIL "$mode" "no --stats interrupt line in $err"
    return
  fi
  if [ "$mode" = split ] && ((msis < min_count)); then
    result FAIL "$mode" "--stats msis=$msis: fewer than $min_count deliveries by kvmini's IOAPIC"
    return
  fi
  local injected
  injected=$(sed -n 's/.*interrupts:.* injected=\([0-9]*\).*/\1/p' "$err" | head -n 1)
  if [ "$mode" = user ] && ((${injected:-0} < min_count)); then
    result FAIL "$mode" "--stats injected=${injected:-none}: fewer than $min_count injections by kvmini's LAPIC"
    return
  fi
  n=$(guest_count)
  local rate
  rate=$(grep -a '^storm: ' "$console" | tail -n 1 | sed -n 's/.*, \([0-9]*\) per second.*/\1/p')
  result PASS "$mode"
  echo "  $mode: $n interrupts counted by the guest (${rate:-?}/s), --stats msis=$msis, quit took $quit_ms ms"
}

if [ ! -x "$kvmini" ] || [ ! -f "$elf" ]; then
  for mode in "${modes[@]}"; do result FAIL "$mode" "$kvmini or $elf not built"; done
  exit 1
fi
# A vCPU halted with IF=0 forever: `how` is quit (Ctrl-A x, status 0) or
# sigterm (status 143); either must end kvmini within $quit_timeout_s s.
run_halted() {
  local mode=$1 how=$2 name="halted forever $1 $2"
  console=$out/halt-$mode-$how.console.log
  err=$out/halt-$mode-$how.kvmini.log
  fifo=$(mktemp -u "${TMPDIR:-/tmp}/kvmini-halt.XXXXXX")
  mkfifo "$fifo" || { record FAIL "$name" "mkfifo failed"; return; }
  exec 3<>"$fifo"
  timeout --kill-after=5 60 "$kvmini" run --test-devices -k "$hang_elf" -m 32 --irqchip "$mode" \
    -p "mode=$mode" <"$fifo" >"$console" 2>"$err" &
  pid=$!
  local deadline=$((SECONDS + start_timeout_s))
  until grep -aq 'hangs on purpose' "$console"; do
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
      stop_kvmini
      record FAIL "$name" "the guest did not start"
      return
    fi
    sleep 0.1
  done
  sleep 0.5  # let it reach HLT
  local want
  if [ "$how" = quit ]; then printf "$quit" >&3; want=0; else kill -TERM "$pid"; want=143; fi
  if ! exits_within "$quit_timeout_s"; then
    stop_kvmini
    record FAIL "$name" "kvmini still running $quit_timeout_s s later"
  else
    wait "$pid"; local status=$?; pid=
    if [ "$status" = "$want" ]; then record PASS "$name"; else record FAIL "$name" "exit status $status, not $want"; fi
  fi
  exec 3>&-
  rm -f "$fifo"; fifo=
}

for mode in "${modes[@]}"; do run_mode "$mode"; done
if [ -x "$kvmini" ] && [ -f "$hang_elf" ]; then
  for mode in "${modes[@]}"; do run_halted "$mode" quit; run_halted "$mode" sigterm; done
else
  for mode in "${modes[@]}"; do record FAIL "halted forever $mode" "$hang_elf not built"; done
fi
exit "$failed"
