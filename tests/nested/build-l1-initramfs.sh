#!/usr/bin/env bash
# Assemble the initramfs of the hardware-style lane's L1 machine.
#
#   build-l1-initramfs.sh OUT.cpio L1_KERNEL_DIR VMLINUX ARGS...
#
# L1_KERNEL_DIR: from fetch-l1-kernel.sh (modules/). VMLINUX: the reference
# guest kernel. ARGS: written to /lane/args (hardware_lane.sh's arguments in
# the tests lane, kvmini's extra arguments in the shell lane).
#
# Holds: a static busybox with all its applets; bash, GNU grep/sed/awk and a
# few coreutils (the test scripts are bash and GNU-flavoured) with the shared
# libraries `ldd` lists and the dynamic loader; the cloud kernel's
# irqbypass/kvm/kvm-amd and virtio-blk modules; under /kvmini a slice of this
# tree: build/kvmini (stripped) and its libraries, build/guests/*.elf, the
# integration test scripts, guests/linux/guest-files.sh, and images/ with the
# reference vmlinux, initramfs and ext2 root; /init is tests/nested/l1-init.sh.
# Uncompressed newc (the L1 kernel unpacks it fastest). No root needed.
# Prints the output path last.
set -euo pipefail
cd "$(dirname "$0")/../.."

[ $# -ge 3 ] || { echo "usage: $0 OUT.cpio L1_KERNEL_DIR VMLINUX [ARGS...]" >&2; exit 2; }
out=$1 kdir=$2 vmlinux=$3
shift 3
die() { echo "build-l1-initramfs: error: $*" >&2; exit 1; }
# shellcheck source=../../guests/linux/guest-files.sh
. guests/linux/guest-files.sh
guest_check_busybox
command -v cpio >/dev/null || die "cpio not installed"
[ -x build/kvmini ] || die "build/kvmini not built (make build/kvmini)"
[ -f "$vmlinux" ] || die "no reference kernel $vmlinux"
ls build/guests/*.elf >/dev/null 2>&1 || die "no test guests in build/guests (make guests)"

work=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-l1.XXXXXX")
trap 'rm -rf "$work"' EXIT
r=$work/root
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,gnu/bin,proc,sys,tmp,root,modules,lane,kvmini/build/guests,kvmini/images}

# busybox and its applets
cp "$guest_busybox" "$r/bin/busybox"
"$guest_busybox" --list-full | while read -r path; do
  [ "$path" = bin/busybox ] || [ -e "$r/$path" ] || ln -s /bin/busybox "$r/$path"
done

# copy_with_libs FILE DEST: FILE to DEST, and each library ldd lists (and the
# loader) to the same path as on this host.
copy_with_libs() {
  cp -L "$1" "$2"
  ldd "$1" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' | while read -r lib; do
    [ -e "$r$lib" ] && continue
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
}
for tool in bash grep sed awk date timeout truncate head tail cut tr wc dd sha256sum sleep cat cp rm mkdir \
            printf sort ls env mv ln stat touch tee; do
  path=$(type -P "$tool") || die "$tool not found"
  copy_with_libs "$path" "$r/gnu/bin/$tool"
done
ln -s /gnu/bin/bash "$r/bin/bash" 2>/dev/null || true

# the modules (no modules.dep: l1-init.sh loads them in dependency order)
for m in virt/lib/irqbypass arch/x86/kvm/kvm arch/x86/kvm/kvm-amd drivers/virtio/virtio drivers/virtio/virtio_ring \
         drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci \
         drivers/block/virtio_blk; do
  f=$kdir/modules/kernel/$m.ko
  [ -f "$f" ] || die "no $f"
  cp "$f" "$r/modules/"
done

# kvmini, the guests, the scripts, the images
k=$r/kvmini
strip -o "$work/kvmini" build/kvmini
copy_with_libs "$work/kvmini" "$k/build/kvmini"
cp build/guests/*.elf "$k/build/guests/"
mkdir -p "$k/tests/integration" "$k/guests/linux"
cp tests/integration/*.sh "$k/tests/integration/"
cp guests/linux/guest-files.sh "$k/guests/linux/"
cp "$vmlinux" "$k/images/vmlinux"
guests/linux/build-initramfs.sh "$k/images/initramfs.cpio" >/dev/null
guests/linux/build-rootfs.sh "$k/images/rootfs.img" >/dev/null 2>&1 || die "root disk build failed"

cp tests/nested/l1-init.sh "$r/init"
chmod 0755 "$r/init"
printf '%s\n' "$*" >"$r/lane/args"
chmod 1777 "$r/tmp"

guest_dev_console_cpio 0 >"$work/dev.cpio"
(cd "$r" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$work/files.cpio"
mkdir -p "$(dirname "$out")"
cat "$work/dev.cpio" "$work/files.cpio" >"$out"
echo "$out"
