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
# In the modes where kvmini emulates the PIT and IOAPIC (split, user), the
# guest is told to keep its tick on the PIT (no TSC-deadline, no LAPIC timer), and the
# test checks that the timer went through IOAPIC pin 2 and that kvmini raised
# at least 100 interrupt lines (the ticks) during the boot.
# On a host with hardware KVM (VMX/SVM in /proc/cpuinfo: a real KVM runner,
# or the L1 machine of the hardware-style lane, tests/nested/) the guest's
# userspace runs too: the test then also waits for the init's marker
# KVMINI-INIT-OK and kvmini's exit 0, and checks the guest's /proc/interrupts:
# the serial port (IRQ 4) counted on the IO-APIC, and with a disk root the
# virtio interrupts on PCI-MSI (disk-msix) or the IO-APIC (disk-intx). With a
# disk root it also gives the guest a second, empty virtio-blk disk (vdb):
# the init writes a known pattern there with dd (kvmini.disktest=), reads it
# back, and once kvmini has exited this script checks that the pattern is in
# the image file.
# On a software-KVM host (no VMX/SVM, see ../shared/HOST-KVM.md) Linux
# userspace cannot run, so the test ends at `Run /init` and says so.
#
# Appends "PASS: name" or "FAIL: name (why)" to $KVMINI_TEST_RESULTS if set.
#
# Environment: KVMINI (default build/kvmini); KVMINI_BOOT_TIMEOUT (900 s);
# KVMINI_VMLINUX, KVMINI_INITRAMFS, KVMINI_ROOTFS: prebuilt guest files
# instead of building them (the rootfs is copied; used where no build can
# run, inside the lane's L1); KVMINI_BOOT_RUN: a repeat's tag, added to the
# test's name and log directory; KVMINI_BOOT_DISKLOAD=N (hardware KVM, disk
# root): the init first reads the root disk N times from 16 processes with
# O_DIRECT (kvmini.diskload=N) and must print KVMINI-LOAD-DONE;
# KVMINI_BOOT_NO_PARAMS=1 (initramfs root): kvmini gets no -p at all, as a
# kvmtool user would type it: the board's default parameters must give the
# console and the boot (the test's own name says "params=none");
# KVMINI_BOOT_TICK=lapic (split, user): the guest keeps its own LAPIC timer
# (TSC-deadline where its CPUID shows it) instead of the PIT; in user mode the
# test then checks that kvmini's LAPIC timers fired at least 100 times.
set -uo pipefail
cd "$(dirname "$0")/../.."

mode=${1:?mode}
cpus=${2:?cpus}
shift 2
root=initramfs
case ${1:-} in initramfs|disk-msix|disk-intx) root=$1; shift ;; esac
run_tag=${KVMINI_BOOT_RUN:-}
diskload=${KVMINI_BOOT_DISKLOAD:-}
[ "$root" != initramfs ] || diskload=
no_params=${KVMINI_BOOT_NO_PARAMS:-}
[ "$root" = initramfs ] || no_params=
tick=${KVMINI_BOOT_TICK:-pit}
[ "$mode" != kernel ] || tick=lapic
case $tick in pit|lapic) ;; *) echo "boot_test.sh: KVMINI_BOOT_TICK must be pit or lapic" >&2; exit 2 ;; esac
lapic_tick=
[ -n "$no_params" ] && [ "$mode" != kernel ] && tick=lapic  # the guest's own choice
[ "$mode" != kernel ] && [ "$tick" = lapic ] && lapic_tick=1
name="boot linux irqchip=$mode cpus=$cpus root=$root${no_params:+ params=none}${diskload:+ diskload=$diskload}${lapic_tick:+ tick=lapic}${*:+ $*}${run_tag:+ run $run_tag}"
timeout_s=${KVMINI_BOOT_TIMEOUT:-900}
out=build/boot-test/$mode-$cpus-$root${no_params:+-noparams}${diskload:+-load$diskload}${lapic_tick:+-lapictick}${run_tag:+-run$run_tag}
mkdir -p "$out"

result() {
  echo "$1: $name${2:+ ($2)}"
  [ -n "${KVMINI_TEST_RESULTS:-}" ] && echo "$1: $name${2:+ ($2)}" >> "$KVMINI_TEST_RESULTS"
  [ "$1" = PASS ]
  exit $?
}

if [ -n "${KVMINI_VMLINUX:-}" ]; then
  vmlinux=$KVMINI_VMLINUX
else
  vmlinux=$(guests/linux/build-kernel.sh | tail -n 1) || result FAIL "kernel build failed"
fi
hardware=0
grep -qwE 'vmx|svm' /proc/cpuinfo && hardware=1

root_args=()
init_line='Run /init as init process'
data_disk=
if [ "$root" = initramfs ]; then
  if [ -n "${KVMINI_INITRAMFS:-}" ]; then
    initrd=$KVMINI_INITRAMFS
  else
    initrd=$(guests/linux/build-initramfs.sh "$out/initramfs.cpio" | tail -n 1) || result FAIL "initramfs build failed"
  fi
  root_args=(-i "$initrd")
else
  if [ -n "${KVMINI_ROOTFS:-}" ]; then
    disk=$out/rootfs.img
    cp "$KVMINI_ROOTFS" "$disk" || result FAIL "cannot copy $KVMINI_ROOTFS"
  else
    disk=$(guests/linux/build-rootfs.sh "$out/rootfs.img" | tail -n 1) || result FAIL "root disk build failed"
  fi
  root_args=(-d "$disk")
  init_line='Run /sbin/init as init process'
  if [ "$hardware" = 1 ]; then
    # The disk the guest's init writes its pattern to (vdb), fresh each run.
    data_disk=$out/data.img
    rm -f "$data_disk" && truncate -s 4M "$data_disk" || result FAIL "cannot create $data_disk"
    root_args+=(-d "$data_disk")
  fi
fi

params="console=ttyS0 lpj=5000000 tsc=reliable panic=-1 reboot=k"
[ "$root" = initramfs ] || params="$params root=/dev/vda"
[ "$root" = disk-intx ] && params="$params pci=nomsi"
[ "$tick" = lapic ] || params="$params clearcpuid=tsc_deadline_timer noapictimer"
[ -n "$data_disk" ] && params="$params kvmini.disktest=/dev/vdb"
[ "$hardware" = 1 ] && [ -n "$diskload" ] && params="$params kvmini.diskload=$diskload"

param_args=(-p "$params")
[ -z "$no_params" ] || param_args=()
log=$out/console.log
err=$out/kvmini.log
start=$(date +%s%N)
"${KVMINI:-build/kvmini}" run -k "$vmlinux" "${root_args[@]}" -m 128 -c "$cpus" --irqchip "$mode" --stats \
  "${param_args[@]}" "$@" </dev/null >"$log" 2>"$err" &
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
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
elapsed=$(printf '%d.%03d' $((elapsed / 1000)) $((elapsed % 1000)))
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
if [ -n "$lapic_tick" ] && [ "$mode" = user ]; then
  fires=$(sed -n 's/.* timer_fires=\([0-9]*\).*/\1/p' "$err" | awk '{ s += $1 } END { print s + 0 }')
  [ "$fires" -ge 100 ] || fail+=("kvmini's LAPIC timers fired only $fires times (guest tick on the LAPIC timer)")
fi
if [ "$mode" != kernel ] && [ "$tick" = pit ]; then
  grep -qE '\.\.TIMER: vector=0x[0-9a-f]+ apic1=0 pin1=2' "$log" || fail+=("timer not on IOAPIC pin 2")
  raises=$(sed -n 's/.*gsi_raises=\([0-9]*\).*/\1/p' "$err" | tail -n 1)
  [ "${raises:-0}" -ge 100 ] || fail+=("only ${raises:-0} interrupt lines raised through kvmini's models (timer not ticking?)")
fi
# /proc/interrupts as the guest's init printed it: the summed count of the
# line whose chip and name match ($1: chip regex, $2: name regex), empty if
# there is none.
irq_count() {
  local ncpu=$cpus
  tr -d '\r' <"$log" | awk -v n="$ncpu" -v chip="$1" -v dev="$2" '
    /^ *[0-9]+: / {
      sum = 0; for (i = 2; i <= n + 1; i++) sum += $i
      rest = ""; for (i = n + 2; i <= NF; i++) rest = rest " " $i
      if (rest ~ chip && $NF ~ dev) { found = 1; total += sum }
    }
    END { if (found) print total }'
}
if [ "$hardware" = 1 ]; then
  [ "$timed_out" = 0 ] || fail+=("stopped after the ${timeout_s} s timeout")
  grep -q 'KVMINI-INIT-OK' "$log" || fail+=("init marker KVMINI-INIT-OK not printed")
  ! grep -q 'detected stalls' "$log" || fail+=("RCU stall: $(grep -m1 'detected stalls' "$log" | sed 's/^\[[^]]*\] //')")
  if [ -n "$diskload" ]; then
    grep -q 'KVMINI-LOAD-DONE' "$log" || fail+=("the disk load (kvmini.diskload=$diskload) did not finish")
  fi
  [ "$status" = 0 ] || fail+=("kvmini exit status $status")
  n=$(irq_count 'IO-APIC' '^ttyS0$')
  [ "${n:-0}" -gt 0 ] || fail+=("/proc/interrupts: ttyS0 not counted on the IO-APIC (${n:-no line})")
  if [ "$mode" != kernel ] && [ "$tick" = pit ]; then
    n=$(irq_count 'IO-APIC' '^timer$')
    [ "${n:-0}" -gt 0 ] || fail+=("/proc/interrupts: the PIT tick (timer) not counted on the IO-APIC (${n:-no line})")
  fi
  if [ "$root" = disk-msix ]; then
    n=$(irq_count 'PCI-MSI' '^virtio[0-9]+-')
    [ "${n:-0}" -gt 0 ] || fail+=("/proc/interrupts: no virtio interrupt counted on PCI-MSI (${n:-no line})")
  elif [ "$root" = disk-intx ]; then
    n=$(irq_count 'IO-APIC' '^virtio[0-9]+')
    [ "${n:-0}" -gt 0 ] || fail+=("/proc/interrupts: no virtio interrupt counted on the IO-APIC (${n:-no line})")
    ! grep -q 'PCI-MSI' "$log" || fail+=("/proc/interrupts: PCI-MSI lines despite pci=nomsi")
  fi
  if [ -n "$data_disk" ]; then
    # The guest's own read-back, then the image file itself (kvmini has exited).
    # shellcheck source=../../guests/linux/guest-files.sh
    . guests/linux/guest-files.sh
    want=$(guest_disk_pattern | sha256sum | cut -d' ' -f1)
    guest_sum=$(tr -d '\r' <"$log" | sed -n 's/^KVMINI-DISK-\(OK\|BAD\) \([0-9a-f]*\)$/\2/p' | head -n 1)
    if [ -z "$guest_sum" ]; then
      fail+=("the guest printed no KVMINI-DISK line (disk test did not run)")
    elif [ "$guest_sum" != "$want" ]; then
      fail+=("the guest read back sha256 $guest_sum from vdb, wrote $want")
    fi
    file_sum=$(dd if="$data_disk" bs=64k skip=$((guest_disk_pattern_offset / 65536)) count=16 2>/dev/null |
               sha256sum | cut -d' ' -f1)
    [ "$file_sum" = "$want" ] || fail+=("$data_disk holds sha256 $file_sum at offset 1 MiB, not the pattern's $want")
  fi
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
