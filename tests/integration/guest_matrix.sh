#!/usr/bin/env bash
# The interrupt conformance matrix: runs each test guest (guests/tests/, built
# to build/guests/NAME.elf) in each irqchip mode it applies to and prints one
# table, guest x mode -> pass, FAIL or n/a (with the reason).
#
#   guest_matrix.sh [--no-build] [--modes "kernel split user"] [--guests "pic lapic ..."]
#   guest_matrix.sh --vmm qemu [--modes "tcg kvm-kernel kvm-split kvm-off"]
#
# With --vmm qemu the same guests run under QEMU instead, as a reference for
# what the guests should see (TCG: QEMU's own models; kvm-*: QEMU on KVM with
# kernel-irqchip=on/split/off). That is not a kvmini test: nothing is
# recorded in $KVMINI_TEST_RESULTS and the harness self-tests are left out.
#
# Each run:  build/kvmini run --test-devices --stats -k GUEST.elf -c N
#            --irqchip MODE -m 32 -p "mode=MODE mem=32 cpus=N ..."
#            (msi also -d build/guest-matrix/msi.img, a fresh 1 MiB image)
# under a timeout, console and kvmini's own output captured in
# build/guest-matrix/GUEST.MODE.{console,kvmini}.log. A guest passes when it
# ends through isa-debug-exit with 0 (kvmini status 1) AND printed
# "RESULT: PASS" (a triple fault also ends kvmini with status 1). A mode that
# kvmini rejects with "not implemented yet" is n/a, never pass.
#
# Also the harness's own tests (kernel mode): a guest that fails on purpose
# must come out FAIL, one that hangs must be stopped by the timeout, one that
# triple-faults must be reported with kvmini's register dump.
#
# For each pass/fail cell a line "PASS: guest NAME mode MODE" or
# "FAIL: guest NAME mode MODE (why)" is appended to $KVMINI_TEST_RESULTS if
# set (n/a cells are not counted). Exit status 1 if any cell failed.
#
# Environment: KVMINI (default build/kvmini), QEMU (qemu-system-x86_64),
# KVMINI_GUEST_TIMEOUT (60 s per run, 20 s under QEMU), KVMINI_HANG_TIMEOUT (5 s, the hang self-test), KVMINI_PIT_POLICY
# (reinject|discard: what kvmini's own PIT does with lost ticks, checked by
# pit_policy in split and user modes; default reinject).
set -uo pipefail
cd "$(dirname "$0")/../.."

kvmini=${KVMINI:-build/kvmini}
guest_dir=build/guests
out=build/guest-matrix
timeout_s=${KVMINI_GUEST_TIMEOUT:-60}
hang_timeout_s=${KVMINI_HANG_TIMEOUT:-5}
pit_policy=${KVMINI_PIT_POLICY:-reinject}
mem_mib=32
modes=(kernel split user)
modes_given=0
only_guests=
build=1
vmm=kvmini
qemu=${QEMU:-qemu-system-x86_64}

while (($#)); do
  case $1 in
    --no-build) build=0 ;;
    --modes) read -r -a modes <<< "$2"; modes_given=1; shift ;;
    --vmm) vmm=$2; shift ;;
    --guests) only_guests=" $2 "; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "guest_matrix.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

# The guests: name, vCPUs, extra command-line words, and per mode "run" or
# "n/a:reason". A guest the runner cannot run anywhere has cpus "-".
guests=(
  "testdev|2||run|run|run"
  "pic|1||run|run|run"
  "ioapic|1||run|run|run"
  "ioapic_smp|2||run|run|run"
  "lapic|1||run|run|run"
  "lapic_smp|2||run|run|run"
  "lapic_timer|1||run|run|run"
  "pit|1||run|run|run"
  "pit_policy|1|pit_policy=$pit_policy|n/a:KVM's PIT, not kvmini's policy|run|run"
  "serial|1||run|run|run"
  "softint|1||run|run|run"
  "msi|1||run|run|run"
  "apic_lvt|2||run|run|run"
  "apic_tpr|1||run|run|run"
  "ipi_storm|2||run|run|run"
  "msi_refused|1||run|run|run"
  "x2apic|1||run|run|run"
)
# Guests that need a disk: msi drives a virtio-blk PCI device (MSI-X), given
# this 1 MiB image (the image's base name is the device's GET_ID string).
declare -A disk=([msi]=$out/msi.img)

case $vmm in
  kvmini) ;;
  qemu)
    ((modes_given)) || modes=(tcg kvm-kernel kvm-split kvm-off)
    timeout_s=${KVMINI_GUEST_TIMEOUT:-20}
    out=build/guest-matrix/qemu
    unset KVMINI_TEST_RESULTS
    command -v "$qemu" >/dev/null || { echo "guest matrix: no $qemu"; exit 1; }
    ;;
  *) echo "guest_matrix.sh: --vmm kvmini or qemu" >&2; exit 2 ;;
esac

mkdir -p "$out"
for image in "${disk[@]}"; do rm -f "$image" && truncate -s 1M "$image"; done
if ((build)); then
  targets=(guests)
  [ "$vmm" = kvmini ] && [ "$kvmini" = build/kvmini ] && targets+=(build/kvmini)
  make --no-print-directory -j2 "${targets[@]}" >"$out/build.log" 2>&1 || {
    echo "guest matrix: build failed (see $out/build.log):"; tail -n 20 "$out/build.log"
    [ -n "${KVMINI_TEST_RESULTS:-}" ] && echo "FAIL: guest matrix build" >> "$KVMINI_TEST_RESULTS"
    exit 1
  }
fi
if [ "$vmm" = kvmini ] && [ ! -x "$kvmini" ]; then
  echo "guest matrix: no $kvmini"
  [ -n "${KVMINI_TEST_RESULTS:-}" ] && echo "FAIL: guest matrix ($kvmini missing)" >> "$KVMINI_TEST_RESULTS"
  exit 1
fi

record() {  # PASS|FAIL name mode [why]
  [ -n "${KVMINI_TEST_RESULTS:-}" ] || return 0
  echo "$1: guest $2 mode $3${4:+ ($4)}" >> "$KVMINI_TEST_RESULTS"
}

# The command that runs guest $1 in mode $2 with $3 vCPUs and command line
# words $4, in the array `cmd`.
vmm_command() {
  local name=$1 mode=$2 cpus=$3 extra=$4 elf=$guest_dir/$1.elf
  if [ "$vmm" = kvmini ]; then
    cmd=("$kvmini" run --test-devices --stats -k "$elf" -c "$cpus" --irqchip "$mode" -m "$mem_mib"
         -p "mode=$mode mem=$mem_mib cpus=$cpus${extra:+ $extra}")
    [ -n "${disk[$name]:-}" ] && cmd+=(-d "${disk[$name]}")
    return
  fi
  # QEMU's Multiboot loader takes ELF32 only; the image is the same.
  objcopy -O elf32-i386 "$elf" "$out/$name.elf32"
  local accel guest_mode
  case $mode in
    tcg) accel=(-accel tcg -machine pc -cpu max); guest_mode=qemu-tcg ;;
    kvm-kernel) accel=(-accel kvm -machine pc,kernel-irqchip=on); guest_mode=kernel ;;
    kvm-split) accel=(-accel kvm -machine pc,kernel-irqchip=split); guest_mode=split ;;
    kvm-off) accel=(-accel kvm -machine pc,kernel-irqchip=off); guest_mode=qemu-off ;;
    *) accel=(); guest_mode=$mode ;;
  esac
  # The CPUID this host's software KVM can run (shared/HOST-KVM.md); QEMU's
  # userspace LAPIC (kernel-irqchip=off) has no TSC-deadline mode.
  case $mode in
    kvm-off) accel+=(-cpu qemu64,-xsave,-popcnt) ;;
    kvm-*) accel+=(-cpu qemu64,-xsave,-popcnt,+tsc-deadline) ;;
  esac
  # QEMU's PIT reinjects lost ticks only in KVM (kernel-irqchip=on).
  [ "$name" = pit_policy ] && extra="pit_policy=$([ "$mode" = kvm-kernel ] && echo reinject || echo discard)"
  # A transitional virtio-blk-pci (1af4:1001, MSI-X), as kvmini's -d gives.
  [ -n "${disk[$name]:-}" ] &&
    accel+=(-drive "file=${disk[$name]},if=none,id=disk0,format=raw" -device virtio-blk-pci,drive=disk0,serial=msi.img)
  cmd=("$qemu" "${accel[@]}" -m "$mem_mib" -smp "$cpus" -display none -serial stdio -monitor none -no-reboot
       -device isa-debug-exit,iobase=0xf4,iosize=4 -device pc-testdev -kernel "$out/$name.elf32"
       -append "mode=$guest_mode mem=$mem_mib cpus=$cpus${extra:+ $extra}")
}

# Runs one guest; sets verdict (pass|fail|na), why, elapsed, console, err.
run_guest() {  # name mode cpus extra timeout
  local name=$1 mode=$2 cpus=$3 extra=$4 limit=$5
  local elf=$guest_dir/$name.elf
  console=$out/$name.$mode.console.log
  err=$out/$name.$mode.$vmm.log
  verdict=fail why= status=
  if [ ! -f "$elf" ]; then why="$elf not built"; elapsed=0; return; fi
  vmm_command "$name" "$mode" "$cpus" "$extra"
  local start=$(date +%s%N)
  timeout --kill-after=5 "$limit" "${cmd[@]}" </dev/null >"$console" 2>"$err"
  status=$?
  elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
  elapsed=$(printf '%d.%02d' $((elapsed / 1000)) $((elapsed % 1000 / 10)))
  local result
  result=$(grep -a -m1 '^RESULT: ' "$console" | tr -d '\r')
  if grep -aq 'not implemented yet' "$err"; then
    verdict=na why="not implemented yet"
  elif [ "$status" = 124 ] || [ "$status" = 137 ]; then
    why="timed out after ${limit} s; last console line: $(grep -av '^\s*$' "$console" | tail -n 1 | cut -c1-100)"
  elif grep -aq 'triple fault' "$err"; then
    why="triple fault: $(grep -a -m1 'guest triple fault' "$err" | sed 's/.*kvmini: //' | cut -c1-100)"
  elif [ "$status" = 1 ] && [[ $result == "RESULT: PASS"* ]]; then
    verdict=pass why=$(sed -n 's/^RESULT: PASS (\(.*skipped\))$/\1/p' <<< "$result")
  elif [ "$status" = 5 ] && [[ $result == "RESULT: SKIP"* ]]; then
    verdict=na why="guest: ${result#RESULT: SKIP: }"
  elif [ "$status" = 3 ] && [[ $result == "RESULT: FAIL"* ]]; then
    why="${result#RESULT: }; first: $(grep -a -m1 -E '^  FAIL: |^EXCEPTION' "$console" | sed 's/^ *//' | cut -c1-120)"
  else
    why="kvmini exit status $status, ${result:-no RESULT line}; kvmini: $(grep -a 'kvmini: ' "$err" | tail -n 1 | sed 's/.*kvmini: //' | cut -c1-100)"
  fi
}

declare -A cell
details=()
failed=0
names=()

for entry in "${guests[@]}"; do
  IFS='|' read -r name cpus extra m_kernel m_split m_user <<< "$entry"
  [ -n "$only_guests" ] && [[ $only_guests != *" $name "* ]] && continue
  names+=("$name")
  for mode in "${modes[@]}"; do
    case $mode in kernel) how=$m_kernel ;; split) how=$m_split ;; user) how=$m_user ;; *) how="n/a:unknown mode" ;; esac
    [ "$vmm" = qemu ] && { how=run; [ "$cpus" = - ] && how=$m_kernel; }
    if [[ $how == n/a:* ]]; then
      cell[$name,$mode]="n/a (${how#n/a:})"
      continue
    fi
    run_guest "$name" "$mode" "$cpus" "$extra" "$timeout_s"
    case $verdict in
      pass)
        cell[$name,$mode]="pass${why:+ ($why)}"
        record PASS "$name" "$mode"
        details+=("$name/$mode: pass in $elapsed s${why:+, $why:}")
        while IFS= read -r line; do details+=("    $line"); done < <(grep -a '^  skip: ' "$console" | sed 's/^  //')
        ;;
      na)
        cell[$name,$mode]="n/a ($why)"
        ;;
      fail)
        cell[$name,$mode]="FAIL"
        failed=1
        record FAIL "$name" "$mode" "$why"
        details+=("$name/$mode: FAIL after $elapsed s: $why")
        while IFS= read -r line; do details+=("    $line"); done < <(grep -a -E '^  FAIL: |^EXCEPTION|^  [RC][A-Z0-9]+=' "$console" | head -n 12 | sed 's/^  //')
        details+=("    logs: $console, $err")
        ;;
    esac
  done
done

# ---- the harness's own tests (kernel mode) ----
harness_names=()
self_test() {  # name ok(0/1) short long
  local name=$1 ok=$2 short=$3 long=$4
  harness_names+=("$name")
  if [ "$ok" = 1 ]; then
    cell[$name,kernel]="pass ($short)"
    record PASS "$name" kernel
  else
    cell[$name,kernel]="FAIL"
    failed=1
    record FAIL "$name" kernel "harness self-test: $long"
  fi
  for mode in "${modes[@]}"; do
    [ "$mode" = kernel ] || cell[$name,$mode]="n/a (harness self-test)"
  done
  details+=("$name/kernel, harness self-test: $([ "$ok" = 1 ] && echo pass || echo FAIL): $long")
}

if [ "$vmm" = kvmini ] && { [ -z "$only_guests" ] || [[ $only_guests == *" harness"* ]]; }; then
  run_guest harness_fail kernel 1 "" "$timeout_s"
  ok=0; [ "$verdict" = fail ] && [[ $why == *"deliberate failure"* ]] && ok=1
  self_test harness_fail $ok "reported as FAIL" "a guest that fails on purpose must come out FAIL; it came out $verdict: ${why:-no reason}"

  run_guest harness_hang kernel 1 "" "$hang_timeout_s"
  ok=0; [ "$verdict" = fail ] && [[ $why == "timed out"* ]] && ok=1
  self_test harness_hang $ok "stopped by the ${hang_timeout_s} s timeout" "a guest that hangs must be stopped by the timeout and fail; it came out $verdict after $elapsed s: ${why:-no reason}"

  run_guest harness_triple kernel 1 "" "$timeout_s"
  ok=0 short="triple fault, registers shown"
  if [ "$verdict" = fail ] && [[ $why == "triple fault"* ]] && grep -aq '^RIP=' "$err"; then
    if grep -aq 'RAX=00000000007e1f1e' "$err"; then
      ok=1
    elif grep -qw svm /proc/cpuinfo && grep -aq '^RIP=000000000000fff0' "$err" &&
         grep -aq "reset values" "$err"; then
      # KVM on AMD SVM INITs the vCPU before it reports the shutdown (Linux
      # arch/x86/kvm/svm/svm.c shutdown_interception: the VMCB is undefined
      # after SHUTDOWN), so the registers read then are the reset state;
      # kvmini must say so rather than blame the reset vector.
      ok=1 short="triple fault; SVM: registers are the reset state"
    fi
  fi
  self_test harness_triple $ok "$short" "a guest that triple-faults must fail with kvmini's register dump; it came out $verdict: ${why:-no reason}"
  details+=("    kvmini's register dump, from $err:")
  while IFS= read -r line; do details+=("      $line"); done < <(grep -a -A8 'triple fault (shutdown)' "$err" | tail -n +2)
fi

# ---- the table ----
all_rows=("${names[@]}" "${harness_names[@]}")
w0=5
for n in "${all_rows[@]}"; do ((${#n} > w0)) && w0=${#n}; done
declare -A width
for mode in "${modes[@]}"; do
  width[$mode]=${#mode}
  for n in "${all_rows[@]}"; do
    c=${cell[$n,$mode]:-}
    ((${#c} > width[$mode])) && width[$mode]=${#c}
  done
done
echo
if [ "$vmm" = qemu ]; then
  echo "reference: the guests under $qemu (not a kvmini test; logs in $out/)"
else
  echo "interrupt conformance matrix (guests/tests, kvmini $kvmini, $mem_mib MiB; logs in $out/)"
fi
header=$(printf '%-*s' "$w0" guest); sep=$(printf '%*s' "$w0" '' | tr ' ' '-')
for mode in "${modes[@]}"; do
  header+=$(printf ' | %-*s' "${width[$mode]}" "$mode")
  sep+="-+-"$(printf '%*s' "${width[$mode]}" '' | tr ' ' '-')
done
echo "${header%"${header##*[! ]}"}"
echo "$sep"
for n in "${all_rows[@]}"; do
  [ "$n" = "${harness_names[0]:-}" ] && echo "$sep"
  row=$(printf '%-*s' "$w0" "$n")
  for mode in "${modes[@]}"; do row+=$(printf ' | %-*s' "${width[$mode]}" "${cell[$n,$mode]:-}"); done
  echo "${row%"${row##*[! ]}"}"
done
echo
echo "details:"
for d in "${details[@]}"; do echo "  $d"; done
echo
if ((failed)); then
  echo "guest matrix: FAILED"
  exit 1
fi
echo "guest matrix: passed"
exit 0
