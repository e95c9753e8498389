#!/usr/bin/env bash
# The hardware-style KVM lane's test plan: what only a KVM that runs Linux
# userspace can show. Runs on the KVM it finds: inside the lane's L1 machine
# (QEMU TCG with SVM, tests/nested/run-lane.sh) or directly on a real KVM host
# (the GitHub runner: `make hardware-lane`).
#
#   hardware_lane.sh [--prefix TEXT] [--modes "kernel split"] [--smp-repeat N]
#                    [--load-passes N] [--no-matrix] [--no-boot]
#
# The Linux boot tests (boot_test.sh, which on such a host waits for the
# init's marker and kvmini's exit 0, checks /proc/interrupts and the
# second-disk pattern) in every irqchip mode of IRQCHIP_MODES, on 1 and 2
# vCPUs, root from the initramfs and from virtio-blk (MSI-X and INTx); each
# 2-vCPU configuration N times (--smp-repeat, default 10), to catch a
# one-in-ten SMP failure (AP start-up, a hang with a disk).
# Then, per mode, 2 vCPUs under disk load: 16 guest processes read the root
# disk with O_DIRECT (--load-passes times each, default 4), MSI-X and INTx.
# Then the test-guest matrix in the same modes.
#
# A host without VMX/SVM is a FAIL, not a skip: this lane exists to run
# userspace. Results go to $KVMINI_TEST_RESULTS as usual, each test's name
# prefixed with --prefix (e.g. "hardware-kvm: ", so that they differ from the
# kvm_pvm lane's); each new result line is also printed, unprefixed, as
# "lane-result: LINE" as soon as its test ends, and the last line is
# "lane-done" (the L1 runner reads both from the serial console and adds its
# own "nested: ").
#
# Environment as boot_test.sh and guest_matrix.sh (KVMINI, KVMINI_VMLINUX,
# KVMINI_INITRAMFS, KVMINI_ROOTFS, KVMINI_BOOT_TIMEOUT).
# No -e: a failing test is recorded and the run goes on to the next one.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

# The irqchip modes this lane runs: the one list to extend when a mode lands.
IRQCHIP_MODES="kernel split user"

prefix=
smp_repeat=10
load_passes=4
matrix=1
boot=1
while (($#)); do
  case $1 in
    --prefix) prefix=$2; shift ;;
    --smp-repeat) smp_repeat=$2; shift ;;
    --load-passes) load_passes=$2; shift ;;
    --modes) IRQCHIP_MODES=$2; shift ;;
    --no-matrix) matrix=0 ;;
    --no-boot) boot=0 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "hardware_lane.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

# The tests write to a file of this lane; each new line is copied, with the
# prefix, to the caller's $KVMINI_TEST_RESULTS.
outer_results=${KVMINI_TEST_RESULTS:-}
mkdir -p build
results=$PWD/build/hardware-lane-results.txt
: >"$results"
export KVMINI_TEST_RESULTS=$results
seen=0
emit_new_results() {
  local total line
  total=$(wc -l <"$results")
  if [ "$total" -gt "$seen" ]; then
    while IFS= read -r line; do
      echo "lane-result: $line"
      if [ -n "$outer_results" ]; then
        case $line in
          PASS:\ *|FAIL:\ *) echo "${line%%: *}: $prefix${line#*: }" >>"$outer_results" ;;
        esac
      fi
    done < <(tail -n +"$((seen + 1))" "$results" | head -n "$((total - seen))")
    seen=$total
  fi
}
record_fail() {
  echo "FAIL: $1" >>"$results"
  emit_new_results
}

failed=0
if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
  record_fail "hardware lane (no VMX/SVM on this host: its KVM cannot run guest userspace)"
  echo lane-done
  exit 1
fi
if [ ! -w /dev/kvm ]; then
  record_fail "hardware lane (no writable /dev/kvm)"
  echo lane-done
  exit 1
fi

# A boot here takes seconds; a hang should not cost 15 minutes.
export KVMINI_BOOT_TIMEOUT=${KVMINI_BOOT_TIMEOUT:-300}
lane_start=$(date +%s)
if ((boot)); then
  for mode in $IRQCHIP_MODES; do
    for cpus in 1 2; do
      for root in initramfs disk-msix disk-intx; do
        runs=1
        [ "$cpus" -gt 1 ] && runs=$smp_repeat
        for ((r = 1; r <= runs; r++)); do
          tag=
          ((runs > 1)) && tag="$r/$runs"
          KVMINI_BOOT_RUN=${tag//\//of} tests/integration/boot_test.sh "$mode" "$cpus" "$root" || failed=1
          emit_new_results
          # The images of a passing run are not needed (L1 keeps its files in RAM).
          if ! tail -n 1 "$results" | grep -q '^FAIL: '; then
            rm -f "build/boot-test/$mode-$cpus-$root${tag:+-run${tag//\//of}}/"{rootfs,data}.img
          fi
        done
      done
    done
  done
  # User mode with the guest's own TSC-deadline timer (kvmini's MSR exits
  # and LAPIC timers rather than the PIT), and a boot given no -p at all
  # (the board's default parameters must give the console and the marker).
  KVMINI_BOOT_TICK=lapic tests/integration/boot_test.sh user 2 || failed=1
  emit_new_results
  KVMINI_BOOT_NO_PARAMS=1 tests/integration/boot_test.sh kernel 1 || failed=1
  emit_new_results
  if ((load_passes > 0)); then
    for mode in $IRQCHIP_MODES; do
      for root in disk-msix disk-intx; do
        KVMINI_BOOT_DISKLOAD=$load_passes tests/integration/boot_test.sh "$mode" 2 "$root" || failed=1
        emit_new_results
        if ! tail -n 1 "$results" | grep -q '^FAIL: '; then
          rm -f "build/boot-test/$mode-2-$root-load$load_passes/"{rootfs,data}.img
        fi
      done
    done
  fi
fi
if ((matrix)); then
  # shellcheck disable=SC2086
  tests/integration/guest_matrix.sh --no-build --modes "$IRQCHIP_MODES" || failed=1
  emit_new_results
fi
echo "hardware lane: $(($(date +%s) - lane_start)) s"
echo lane-done
exit "$failed"
