#!/usr/bin/env bash
# Build the kvmini reference root filesystem: a 16 MiB ext2 image with the
# same content as the initramfs (static busybox, applet links, /init and
# /sbin/init; see guest-files.sh), for booting with root=/dev/vda from
# virtio-blk. Made with `mke2fs -d`, so no loop mount and no root needed.
# /dev is an empty directory: the kernel mounts devtmpfs on it
# (CONFIG_DEVTMPFS_MOUNT) before it starts /sbin/init.
#
#   build-rootfs.sh OUT.img
#
# Prints the output path last.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=guest-files.sh
. "$here/guest-files.sh"

[ $# -eq 1 ] || { echo "usage: $0 OUT.img" >&2; exit 2; }
out=$1
mke2fs=$(command -v mke2fs || echo /sbin/mke2fs)
[ -x "$mke2fs" ] || { echo "error: mke2fs not found (apt-get install e2fsprogs)" >&2; exit 1; }
guest_check_busybox

outdir=$(cd "$(dirname "$out")" && pwd)
out="$outdir/$(basename "$out")"
work=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT

mkdir "$work/root"
guest_stage "$work/root"

# Fixed UUID, hash seed and time so that the image is the same every run.
E2FSPROGS_FAKE_TIME=${SOURCE_DATE_EPOCH:-1} "$mke2fs" -q -F -t ext2 -b 1024 \
    -L kvmini-root -U 6b766d69-6e69-4000-8000-726f6f746673 \
    -E root_owner=0:0,hash_seed=6b766d69-6e69-4000-8000-686173680000 \
    -d "$work/root" "$work/out.img" 16M >&2

mv -f "$work/out.img" "$out"
echo "$out"
