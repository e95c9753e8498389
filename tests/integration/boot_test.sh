#!/usr/bin/env bash
# Boots the reference Linux guest with kvmini and checks the kernel's own
# lines on the serial console.
#
#   boot_test.sh MODE CPUS [ROOT] [extra kvmini args...]
#
# ROOT: initramfs (default), or disk-msix / disk-intx: the root file system
# comes from a virtio-blk image (guests/linux/build-rootfs.sh, made with
# mke2fs -d, no loop mount), the disk interrupting by MSI-X or by INTx
# (pci=nomsi); checked: the disk probed as vda, the root mounted from it and
# /sbin/init run from it.
#
# Always checked: ttyS0 probed as a 16550A at IRQ 4, the IOAPIC found through
# the MP table, `Run /init` reached, and with CPUS > 1 every CPU brought up.
# In the modes where kvmini emulates the PIT and IOAPIC (split), the guest is
# told to keep its tick on the PIT (no TSC-deadline, no LAPIC timer), and the
# test checks that the timer went through IOAPIC pin 2 and that kvmini raised
# at least 100 interrupt lines (the ticks) during the boot.
# On a host with hardware KVM the guest's userspace runs too: the test then
# also waits for the initramfs marker KVMINI-INIT-OK and kvmini's exit 0.
# On a software-KVM host (no VMX/SVM, see ../shared/HOST-KVM.md) Linux
# userspace cannot run, so the test ends at `Run /init` and says so.
#
# Appends "PASS: name" or "FAIL: name (why)" to $KVMINI_TEST_RESULTS if set.
set -uo pipefail
cd "$(dirname "$0")/../.."

mode=${1:?mode}
cpus=${2:?cpus}
shift 2
root=initramfs
case ${1:-} in initramfs|disk-msix|disk-intx) root=$1; shift ;; esac
name="boot linux irqchip=$mode cpus=$cpus root=$root${*:+ $*}"
timeout_s=${KVMINI_BOOT_TIMEOUT:-900}
out=build/boot-test/$mode-$cpus-$root
mkdir -p "$out"

result() {
  echo "$1: $name${2:+ ($2)}"
  [ -n "${KVMINI_TEST_RESULTS:-}" ] && echo "$1: $name${2:+ ($2)}" >> "$KVMINI_TEST_RESULTS"
  [ "$1" = PASS ]
  exit $?
}

vmlinux=$(guests/linux/build-kernel.sh | tail -n 1) || result FAIL "kernel build failed"
root_args=()
init_line='Run /init as init process'
if [ "$root" = initramfs ]; then
  initrd=$(guests/linux/build-initramfs.sh "$out/initramfs.cpio" | tail -n 1) || result FAIL "initramfs build failed"
  root_args=(-i "$initrd")
else
  disk=$(guests/linux/build-rootfs.sh "$out/rootfs.img" | tail -n 1) || result FAIL "root disk build failed"
  root_args=(-d "$disk")
  init_line='Run /sbin/init as init process'
fi

hardware=0
grep -qwE 'vmx|svm' /proc/cpuinfo && hardware=1

params="console=ttyS0 lpj=5000000 tsc=reliable panic=-1 reboot=k"
[ "$root" = initramfs ] || params="$params root=/dev/vda"
[ "$root" = disk-intx ] && params="$params pci=nomsi"
[ "$mode" = kernel ] || params="$params clearcpuid=tsc_deadline_timer noapictimer"

log=$out/console.log
err=$out/kvmini.log
start=$(date +%s.%N)
"${KVMINI:-build/kvmini}" run -k "$vmlinux" "${root_args[@]}" -m 128 -c "$cpus" --irqchip "$mode" --stats \
  -p "$params" "$@" </dev/null >"$log" 2>"$err" &
pid=$!

# Wait for kvmini to exit, or (software KVM) for Run /init plus a grace
# period in which the guest's panic-and-reboot normally ends kvmini.
deadline=$(( $(date +%s) + timeout_s ))
seen_init_at=
while kill -0 "$pid" 2>/dev/null; do
  now=$(date +%s)
  if [ "$now" -ge "$deadline" ]; then break; fi
  if [ "$hardware" = 0 ] && [ -z "$seen_init_at" ] && grep -q "$init_line" "$log"; then
    seen_init_at=$now
  fi
  if [ -n "$seen_init_at" ] && [ "$now" -ge $((seen_init_at + 30)) ]; then break; fi
  sleep 1
done
timed_out=0
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  timed_out=1
fi
wait "$pid"
status=$?
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
to_init=$(grep -m1 "$init_line" "$log" | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p')

fail=()
grep -qE 'ttyS0 at I/O 0x3f8 \(irq = 4, base_baud = 115200\) is a 16550A' "$log" || fail+=("no 16550A ttyS0 at IRQ 4")
grep -q 'Intel MultiProcessor Specification' "$log" || fail+=("MP table not found")
grep -qE 'IOAPIC\[0\]: apic_id [0-9]+, version [0-9]+, address 0xfec00000, GSI 0-23' "$log" || fail+=("IOAPIC not found through the MP table")
grep -q "$init_line" "$log" || fail+=("'$init_line' not reached")
if [ "$root" != initramfs ]; then
  grep -qE 'virtio_blk virtio[0-9]+: \[vda\]' "$log" || fail+=("virtio-blk disk not probed as vda")
  grep -q 'VFS: Mounted root' "$log" || fail+=("root not mounted from the disk")
  msis=$(sed -n 's/.*msis=\([0-9]*\).*/\1/p' "$err" | tail -n 1)
  if [ "$root" = disk-msix ]; then
    [ "${msis:-0}" -ge 5 ] || fail+=("the disk sent only ${msis:-0} MSIs")
  else
    raises=$(sed -n 's/.*gsi_raises=\([0-9]*\).*/\1/p' "$err" | tail -n 1)
    [ "${raises:-0}" -ge 5 ] || fail+=("only ${raises:-0} interrupt lines raised: the disk's INTx did not work")
    [ "$mode" != kernel ] || [ "${msis:-0}" -eq 0 ] || fail+=("${msis} MSIs sent despite pci=nomsi")
  fi
fi
if [ "$cpus" -gt 1 ]; then
  grep -qE "smp: Brought up 1 node, $cpus CPUs" "$log" || fail+=("not all $cpus CPUs up")
fi
if [ "$mode" != kernel ]; then
  grep -qE '\.\.TIMER: vector=0x[0-9a-f]+ apic1=0 pin1=2' "$log" || fail+=("timer not on IOAPIC pin 2")
  raises=$(sed -n 's/.*gsi_raises=\([0-9]*\).*/\1/p' "$err" | tail -n 1)
  [ "${raises:-0}" -ge 100 ] || fail+=("only ${raises:-0} interrupt lines raised through kvmini's models (timer not ticking?)")
fi
if [ "$hardware" = 1 ]; then
  grep -q 'KVMINI-INIT-OK' "$log" || fail+=("initramfs marker not printed")
  [ "$status" = 0 ] || fail+=("kvmini exit status $status")
fi
grep -q 'kvmini: error' "$err" && fail+=("kvmini error: $(grep -m1 'kvmini: error' "$err")")

echo "boot test: irqchip=$mode cpus=$cpus root=$root: kvmini exit $status after ${elapsed}s (timed out: $timed_out); guest time to Run /init: ${to_init:-never} s"
tail -n 12 "$err" | sed 's/^/  kvmini: /'
if [ "$hardware" = 0 ]; then
  echo "boot test: software-KVM host (no VMX/SVM): Linux userspace cannot run here, so the boot test ends at 'Run /init'"
fi
if ((${#fail[@]})); then
  echo "--- last console lines ($log):"; tail -n 30 "$log"
  result FAIL "$(IFS=';'; echo "${fail[*]}")"
fi
result PASS
