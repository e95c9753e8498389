#!/usr/bin/env bash
# Fetch (once) the kernel of the hardware-style lane's L1 machine: Debian's
# cloud kernel, whose kvm.ko and kvm-amd.ko give a real SVM /dev/kvm inside
# QEMU's TCG (`-cpu EPYC,+svm,+npt`).
#
#   fetch-l1-kernel.sh
#
# The package (linux-image-<abi>-cloud-amd64, what the meta-package
# linux-image-cloud-amd64 depends on) is fetched with `apt-get download` in a
# temporary directory and unpacked with `dpkg-deb -x` into
# ${XDG_CACHE_HOME:-$HOME/.cache}/kvmini/nested/<package>_<version>/, never
# installed: the host's /boot and its modules are not touched. A finished
# unpack is reused at once. `apt-get update` runs only when apt knows no
# version of the package (and as root or through sudo).
#
# Environment: KVMINI_L1_KERNEL_PACKAGE names the package instead (e.g.
# linux-image-6.1.0-57-cloud-amd64).
#
# The last line on stdout is the cache directory, holding `vmlinuz`,
# `modules/` (the unpacked /lib/modules/<release>), `release` and `version`.
set -euo pipefail

say() { printf 'fetch-l1-kernel: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

for tool in apt-get apt-cache dpkg-deb flock; do
  command -v "$tool" >/dev/null || die "$tool not found: this lane needs a Debian host (apt, dpkg)"
done

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# The concrete package: the meta-package's dependency, unless given.
resolve_package() {
  if [ -n "${KVMINI_L1_KERNEL_PACKAGE:-}" ]; then echo "$KVMINI_L1_KERNEL_PACKAGE"; return; fi
  apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n 1
}
candidate() { apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | head -n 1; }

pkg=$(resolve_package)
version=
[ -n "$pkg" ] && version=$(candidate "$pkg")
if [ -z "$pkg" ] || [ -z "$version" ] || [ "$version" = "(none)" ]; then
  say "apt knows no cloud kernel package yet: running apt-get update"
  "${sudo_cmd[@]}" apt-get update -qq >&2 || die "apt-get update failed"
  pkg=$(resolve_package)
  [ -n "$pkg" ] || die "no package linux-image-cloud-amd64 in the apt sources (Debian main needed)"
  version=$(candidate "$pkg")
  [ -n "$version" ] && [ "$version" != "(none)" ] || die "apt has no candidate version of $pkg"
fi

cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/kvmini/nested
final=$cache_root/${pkg}_${version}
if [ -f "$final/vmlinuz" ] && [ -f "$final/release" ]; then
  echo "$final"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$final.lock"
flock 9
if [ -f "$final/vmlinuz" ] && [ -f "$final/release" ]; then
  echo "$final"
  exit 0
fi

work=$(mktemp -d "$cache_root/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"   # apt's _apt user writes the download here when it can
say "downloading $pkg $version"
(cd "$work" && apt-get download -q "$pkg=$version" >&2) || die "apt-get download $pkg=$version failed"
deb=$(find "$work" -maxdepth 1 -name '*.deb' | head -n 1)
[ -n "$deb" ] || die "apt-get download left no .deb in $work"
mkdir "$work/x"
dpkg-deb -x "$deb" "$work/x" || die "dpkg-deb -x $deb failed"

vmlinuz=$(find "$work/x/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)
[ -n "$vmlinuz" ] || die "$deb has no boot/vmlinuz-*"
release=${vmlinuz##*/vmlinuz-}
moddir=$work/x/lib/modules/$release
for m in virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko; do
  [ -f "$moddir/kernel/$m" ] || die "$deb has no $m (kernel modules compressed or renamed?)"
done

mkdir "$work/out"
mv "$vmlinuz" "$work/out/vmlinuz"
mv "$moddir" "$work/out/modules"
mv "$work/x/boot/config-$release" "$work/out/config" 2>/dev/null || true
echo "$release" >"$work/out/release"
echo "$pkg $version" >"$work/out/version"
rm -rf "$final"
mv "$work/out" "$final"
say "cached in $final"
echo "$final"
