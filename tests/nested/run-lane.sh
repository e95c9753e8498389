#!/usr/bin/env bash
# The hardware-style KVM lane on a host without one: QEMU's TCG emulates an AMD
# CPU with SVM and nested paging (L1); Debian's cloud kernel there loads
# kvm-amd and gives a real SVM /dev/kvm, on which kvmini runs Linux guests
# into userspace (see ../shared/HOST-KVM.md, issue 8).
#
#   run-lane.sh [--no-build] [-- HARDWARE_LANE_ARGS...]
#   run-lane.sh --shell [KVMINI_RUN_ARGS...]
#
# Tests: builds kvmini and the test guests (unless --no-build), the reference
# kernel (cached), fetches the cloud kernel (cached, fetch-l1-kernel.sh),
# assembles the L1 initramfs (build-l1-initramfs.sh), boots L1 (`nice -n 5`,
# 2 vCPUs on MTTCG, KVMINI_L1_MEM MiB), which runs
# tests/integration/hardware_lane.sh; each of its result lines comes back over
# L1's serial console and is recorded as "PASS: nested: ..." or
# "FAIL: nested: ..." in $KVMINI_TEST_RESULTS (if set) and on stdout. L1's
# console is build/nested/l1-console.log; the inner logs come back in a tar
# written to a second raw disk of L1 and are unpacked into build/nested/l1/
# (build/nested/l1/build/boot-test/..., .../guest-matrix/...).
# An L1 that does not boot, has no /dev/kvm, or stops before the lane's end
# is a FAIL with the reason.
#
# --shell: boots the reference guest inside L1 with its busybox shell on this
# terminal (scripts/run-reference.sh --nested). Ctrl-A x quits QEMU.
#
# Environment: QEMU (qemu-system-x86_64), KVMINI_L1_MEM (2560),
# KVMINI_L1_TIMEOUT (1800 s for the whole L1 run), KVMINI_L1_CPU (EPYC,+svm,+npt;
# e.g. EPYC,-svm shows the lane failing when L1 has no /dev/kvm).
# No -e: a failing test is recorded and the run goes on to the next one.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

qemu=${QEMU:-qemu-system-x86_64}
mem=${KVMINI_L1_MEM:-2560}
l1_timeout=${KVMINI_L1_TIMEOUT:-1800}
l1_cpu=${KVMINI_L1_CPU:-EPYC,+svm,+npt}
out=build/nested
build=1
shell=0
lane_args=()
while (($#)); do
  case $1 in
    --no-build) build=0 ;;
    --shell) shell=1; shift; lane_args=("$@"); break ;;
    --) shift; lane_args=("$@"); break ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-lane.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

lane_start=$(date +%s)
failed=0
record() {  # PASS|FAIL name [why]
  local line="$1: nested: $2${3:+ ($3)}"
  [ "$1" = PASS ] || failed=1
  echo "$line"
  if [ -n "${KVMINI_TEST_RESULTS:-}" ]; then echo "$line" >>"$KVMINI_TEST_RESULTS"; fi
}
fatal() {  # a failure that ends the lane before any inner test ran
  if ((shell)); then echo "run-lane: error: $1" >&2; exit 1; fi
  record FAIL "lane set-up" "$1"
  exit 1
}

mkdir -p "$out"
command -v "$qemu" >/dev/null || fatal "$qemu not found (apt-get install qemu-system-x86)"
if ((build)); then
  make --no-print-directory -j2 build/kvmini guests >"$out/build.log" 2>&1 || fatal "build of kvmini or the test guests failed (see $out/build.log)"
fi
vmlinux=$(guests/linux/build-kernel.sh | tail -n 1) || fatal "reference kernel build failed"
kdir=$(tests/nested/fetch-l1-kernel.sh | tail -n 1) || fatal "cannot fetch the L1 cloud kernel package"
l1_initrd=$(tests/nested/build-l1-initramfs.sh "$out/l1.cpio" "$kdir" "$vmlinux" "${lane_args[@]}" | tail -n 1) ||
  fatal "cannot assemble the L1 initramfs"

qemu_cmd=(nice -n 5 "$qemu" -accel tcg,thread=multi -M pc -cpu "$l1_cpu" -smp 2 -m "$mem"
          -nodefaults -display none -no-reboot -kernel "$kdir/vmlinuz" -initrd "$l1_initrd")

if ((shell)); then
  echo "run-lane: L1 (QEMU TCG, SVM) with $(cat "$kdir/version"); the reference guest boots inside it." \
       "Ctrl-A x quits QEMU." >&2
  exec "${qemu_cmd[@]}" -serial mon:stdio -append "console=ttyS0 panic=-1 quiet kvmini_lane=shell" 2>"$out/qemu.log"
fi

# The outbox: a raw disk L1 writes a tar of its /kvmini/build to.
outbox=$out/outbox.img
rm -f "$outbox" && truncate -s 512M "$outbox" || fatal "cannot create $outbox"
console=$out/l1-console.log
rm -rf "$out/l1"
echo "nested lane: booting L1 ($(cat "$kdir/version"), ${mem} MiB, 2 vCPUs, timeout ${l1_timeout} s); console in $console"
l1_start=$(date +%s)
timeout --kill-after=10 "$l1_timeout" "${qemu_cmd[@]}" -serial stdio \
  -append "console=ttyS0 panic=-1 softlockup_panic=1 quiet kvmini_lane=tests" \
  -drive "file=$outbox,format=raw,if=virtio" </dev/null 2>"$out/qemu.log" |
  sed -u 's/\r$//' | tee "$console" | sed -u -n 's/^lane-result: /  inner: /p; /^l1: /p; /^hardware lane: /p'
qemu_status=${PIPESTATUS[0]}
l1_seconds=$(($(date +%s) - l1_start))

mkdir -p "$out/l1"
tar -xf "$outbox" -C "$out/l1" 2>/dev/null || true

# The inner results, then what went wrong with L1 itself.
n=0
while IFS= read -r line; do
  case $line in
    "PASS: "*) record PASS "${line#PASS: }"; n=$((n + 1)) ;;
    "FAIL: "*) record FAIL "${line#FAIL: }"; n=$((n + 1)) ;;
  esac
done < <(sed -n 's/^lane-result: //p' "$console")

if ! grep -q '^l1: ' "$console"; then
  record FAIL "L1 machine" "L1 did not come up: no line from its init in $console (qemu: $(tail -n 1 "$out/qemu.log"))"
elif ! grep -q '^l1: /dev/kvm present' "$console"; then
  record FAIL "L1 /dev/kvm" "$(grep -m1 -E '^l1: (no /dev/kvm|CPU shows no SVM)' "$console" || echo "no /dev/kvm in L1"); see $console"
else
  record PASS "L1 machine up with an SVM /dev/kvm" "$(grep -m1 'Nested Paging' "$console" | sed 's/.*\] //')"
fi
if [ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ]; then
  record FAIL "L1 machine" "stopped after the ${l1_timeout} s timeout; last line: $(tail -n 1 "$console")"
elif [ "$qemu_status" != 0 ]; then
  record FAIL "L1 machine" "QEMU exit status $qemu_status: $(tail -n 1 "$out/qemu.log")"
fi
# Seen once in ~70 2-vCPU disk boots: both L1 CPUs stuck in kvmini's vCPU
# threads (in L1's KVM_RUN) for good; softlockup_panic=1 ends L1 then.
if grep -q 'soft lockup' "$console"; then
  record FAIL "L1 soft lockup" "$(grep -m1 'soft lockup' "$console" | sed 's/^\[[^]]*\] //'); last test started after: $(sed -n 's/^lane-result: //p' "$console" | tail -n 1 | cut -c1-100)"
fi
if ! grep -q '^lane-done' "$console"; then
  record FAIL "lane incomplete" "L1 stopped before hardware_lane.sh ended ($n results came back); see $console"
elif [ "$n" = 0 ]; then
  record FAIL "lane" "no result came back from L1"
fi
echo "nested lane: L1 ran ${l1_seconds} s; whole lane $(($(date +%s) - lane_start)) s; inner logs in $out/l1/build/"
exit "$failed"
