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

# newc_entry NAME MODE(octal) INO RDEVMAJOR RDEVMINOR: one data-less entry.
newc_entry() {
    local name=$1 mode=$2 ino=$3 rmaj=$4 rmin=$5
    local namesize=$(( ${#name} + 1 )) nlink=1
    [ $(( mode & 0170000 )) -eq $(( 0040000 )) ] && nlink=2
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        "$ino" "$mode" 0 0 "$nlink" "$mtime" 0 0 0 "$rmaj" "$rmin" "$namesize" 0
    printf '%s\0' "$name"
    # header (110 bytes) + name is padded to a multiple of 4
    local pad=$(( (4 - (110 + namesize) % 4) % 4 ))
    [ $pad -eq 0 ] || head -c "$pad" /dev/zero
}

{
    newc_entry dev $(( 0040755 )) 1 0 0
    newc_entry dev/console $(( 0020600 )) 2 5 1
    newc_entry 'TRAILER!!!' 0 0 0 0
} >"$work/dev.cpio"

mkdir "$work/root"
guest_stage "$work/root"
# /dev comes from the first archive; everything else from the staging dir.
(cd "$work/root" && find . -mindepth 1 -printf '%P\n' | grep -vx dev | LC_ALL=C sort |
    cpio -o -H newc -R 0:0 --reproducible --quiet) >"$work/files.cpio"

cat "$work/dev.cpio" "$work/files.cpio" >"$work/out.cpio"
mv -f "$work/out.cpio" "$out"
echo "$out"
