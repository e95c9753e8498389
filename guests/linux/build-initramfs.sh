#!/usr/bin/env bash
# Build the kvmini reference initramfs: an UNCOMPRESSED newc cpio holding a
# static busybox, its applet links, /init and /sbin/init (see guest-files.sh).
#
#   build-initramfs.sh OUT.cpio
#
# No root needed. /dev/console cannot be created as a normal user, so its
# entry is written directly in newc format as a small first archive; the
# staging directory is archived with `cpio -o -H newc` and appended (the
# kernel unpacks concatenated archives in order). Same inputs give a
# byte-identical file. Prints the output path last.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=guest-files.sh
. "$here/guest-files.sh"

[ $# -eq 1 ] || { echo "usage: $0 OUT.cpio" >&2; exit 2; }
out=$1
command -v cpio >/dev/null || { echo "error: cpio not installed" >&2; exit 1; }
guest_check_busybox

mtime=${SOURCE_DATE_EPOCH:-0}
outdir=$(cd "$(dirname "$out")" && pwd)
out="$outdir/$(basename "$out")"
work=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-initramfs.XXXXXX")
trap 'rm -rf "$work"' EXIT

guest_dev_console_cpio "$mtime" >"$work/dev.cpio"

mkdir "$work/root"
guest_stage "$work/root"
# /dev comes from the first archive; everything else from the staging dir.
(cd "$work/root" && find . -mindepth 1 -printf '%P\n' | grep -vx dev | LC_ALL=C sort |
    cpio -o -H newc -R 0:0 --reproducible --quiet) >"$work/files.cpio"

cat "$work/dev.cpio" "$work/files.cpio" >"$work/out.cpio"
mv -f "$work/out.cpio" "$out"
echo "$out"
