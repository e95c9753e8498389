#!/usr/bin/env bash
# The README's main command: set-up, build kvmini, build (once, cached) the
# reference guest kernel and its initramfs, and boot it with kvmini, the
# serial console on this terminal. Extra arguments go to `kvmini run`
# (e.g. --irqchip split, -c 2, --stats).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
make -j"$(nproc)" build/kvmini
vmlinux=$(guests/linux/build-kernel.sh | tail -n 1)
initrd=$(guests/linux/build-initramfs.sh build/initramfs.cpio | tail -n 1)
echo "booting $vmlinux with $initrd (Ctrl-A x quits)" >&2
exec build/kvmini run -k "$vmlinux" -i "$initrd" -m 128 \
  -p "console=ttyS0 lpj=5000000 tsc=reliable panic=-1 reboot=k" "$@"
