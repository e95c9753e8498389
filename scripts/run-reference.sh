#!/usr/bin/env bash
# The README's main command: set-up, build kvmini, build (once, cached) the
# reference guest kernel and its initramfs, and boot it with kvmini, the
# serial console on this terminal. Extra arguments go to `kvmini run`
# (e.g. --irqchip split, -c 2, --stats).
#
#   run-reference.sh [--nested] [KVMINI_RUN_ARGS...]
#
# --nested: boot the same guest inside the hardware-style lane's L1 machine
# (QEMU TCG with SVM and Debian's cloud kernel, tests/nested/run-lane.sh), for
# hosts whose KVM is software-only and cannot run guest userspace: the guest's
# init then gives a busybox shell on this terminal; `exit` there reboots the
# guest, which ends kvmini and L1. Ctrl-A x quits QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."

nested=0
if [ "${1:-}" = --nested ]; then nested=1; shift; fi
./scripts/setup.sh
if ((nested)); then
  make -j2 build/kvmini guests
  exec tests/nested/run-lane.sh --no-build --shell "$@"
fi
make -j"$(nproc)" build/kvmini
vmlinux=$(guests/linux/build-kernel.sh | tail -n 1)
initrd=$(guests/linux/build-initramfs.sh build/initramfs.cpio | tail -n 1)
echo "booting $vmlinux with $initrd (Ctrl-A x quits)" >&2
exec build/kvmini run -k "$vmlinux" -i "$initrd" -m 128 \
  -p "console=ttyS0 lpj=5000000 tsc=reliable panic=-1 reboot=k" "$@"
