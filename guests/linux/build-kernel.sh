#!/usr/bin/env bash
# Build the kvmini reference guest kernel (vmlinux + bzImage) from Debian's
# linux-source-6.1 with guests/linux/kernel.config merged on top of tinyconfig.
#
#   build-kernel.sh [--variant std|noint3]
#
# Output goes to ${XDG_CACHE_HOME:-$HOME/.cache}/kvmini/linux-6.1-<key>/, where
# <key> hashes the config fragment, the variant and this script. A finished
# build is reused at once. The last line on stdout is the vmlinux path; all
# build chatter goes to stderr and to build.log next to the vmlinux.
#
# Variants:
#   std     (default) the source as Debian ships it. kvmini completes the
#           INT3 of the kernel's int3 self-test itself.
#   noint3  the int3_selftest() call in alternative_instructions() is removed,
#           so VMMs that cannot complete INT3 on this host (QEMU) boot it.
#
# Environment: KVMINI_LINUX_TARBALL overrides the source tarball
# (default /usr/src/linux-source-6.1.tar.xz).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
fragment="$here/kernel.config"
tarball=${KVMINI_LINUX_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
variant=std

usage() { sed -n '2,20s/^# \{0,1\}//p' "$self" >&2; exit "${1:-2}"; }
say() { printf 'build-kernel: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
        --variant) [ $# -ge 2 ] || usage; variant=$2; shift 2 ;;
        --variant=*) variant=${1#--variant=}; shift ;;
        -h|--help) usage 0 ;;
        *) say "unknown argument: $1"; usage ;;
    esac
done
case $variant in std|noint3) ;; *) die "variant must be std or noint3, not '$variant'" ;; esac

key=$( { cat "$fragment"; printf '\nvariant=%s\n' "$variant"; cat "$self"; } | sha256sum | cut -c1-12)
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/kvmini
final="$cache_root/linux-6.1-$key"

if [ -f "$final/vmlinux" ]; then
    echo "$final/vmlinux"
    exit 0
fi

[ -r "$tarball" ] || die "kernel source tarball not found: $tarball (apt-get install linux-source-6.1)"
for tool in make gcc flex bison bc tar xz sha256sum; do
    command -v "$tool" >/dev/null || die "missing build tool: $tool"
done

mkdir -p "$cache_root"
# One builder per key; a second caller waits and then takes the cached result.
exec 9>"$final.lock"
if ! flock -n 9; then
    say "another build of $key is running; waiting for it"
    flock 9
fi
if [ -f "$final/vmlinux" ]; then
    echo "$final/vmlinux"
    exit 0
fi

# Holding the lock, any temp dir of this key is left over from a build that
# was killed: remove it.
rm -rf "$cache_root/.linux-6.1-$key.tmp."*
work=$(mktemp -d "$cache_root/.linux-6.1-$key.tmp.XXXXXX")
log="$work/out/build.log"
# Long steps run in their own process group (see step), so that a signal to
# this script can stop them, with their children, before the temp dir goes.
child=
step() {
    local rc=0
    setsid "$@" &
    child=$!
    wait "$child" || rc=$?
    child=
    return $rc
}
cleanup() {
    local rc=$?
    if [ -n "$child" ]; then
        kill -TERM -- "-$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
        sleep 1
    fi
    if [ $rc -ne 0 ] && [ -f "$log" ]; then
        cp "$log" "$final.failed.log" 2>/dev/null || true
        if [ $rc -gt 128 ]; then
            say "build interrupted (rc=$rc); its log is in $final.failed.log"
        else
            say "build failed (rc=$rc); last lines of the log, full log in $final.failed.log:"
            tail -n 25 "$log" >&2 || true
        fi
    fi
    rm -rf "$work" 2>/dev/null || { sleep 1; rm -rf "$work"; }
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
mkdir -p "$work/src" "$work/out"
: >"$log"

start=$(date +%s)
say "variant $variant, key $key"
say "unpacking $tarball"
step tar -xJf "$tarball" -C "$work/src" --strip-components=1
src="$work/src"

if [ "$variant" = noint3 ]; then
    alt="$src/arch/x86/kernel/alternative.c"
    n=$(grep -cE '^[[:space:]]+int3_selftest\(\);' "$alt" || true)
    [ "$n" = 1 ] || die "expected exactly one int3_selftest() call in $alt, found $n"
    sed -i -E 's|^([[:space:]]+)int3_selftest\(\);|\1/* kvmini noint3 variant: int3 self-test call removed */|' "$alt"
    # The now uncalled function would draw a -Wunused-function warning.
    sed -i -E 's|^static noinline void __init int3_selftest\(void\)|static noinline void __init __maybe_unused int3_selftest(void)|' "$alt"
    ! grep -qE '^[[:space:]]+int3_selftest\(\);' "$alt" || die "sed did not remove the int3_selftest() call"
    say "removed the int3_selftest() call"
fi

kmake() { step make -C "$src" ARCH=x86_64 KBUILD_BUILD_USER=kvmini KBUILD_BUILD_HOST=kvmini "$@" >>"$log" 2>&1; }

say "configuring: tinyconfig + $(basename "$fragment")"
kmake tinyconfig
cp "$fragment" "$src/kernel/configs/kvmini.config"
kmake kvmini.config   # merge_config.sh -m .config kvmini.config && olddefconfig

# Dependencies can silently drop options: check that every line of the
# fragment ended up in .config with the value it asks for.
mismatch=0
while IFS= read -r line; do
    if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
        sym=${BASH_REMATCH[1]}
        got=$(grep -E "^(# )?$sym[= ]" "$src/.config" || true)
        if [ "$got" != "$line" ]; then
            say "config: wanted '$line', got '${got:-<absent>}'"
            mismatch=1
        fi
    elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
        sym=${BASH_REMATCH[1]}
        if got=$(grep -E "^$sym=" "$src/.config"); then
            say "config: wanted $sym off, got '$got'"
            mismatch=1
        fi
    fi
done <"$fragment"
[ $mismatch = 0 ] || die "config fragment not honoured (see above)"
say "config verified: every option of the fragment is as requested"

jobs=$(nproc 2>/dev/null || echo 2)
say "compiling with make -j$jobs (log: build.log in the cache dir)"
kmake -j"$jobs" vmlinux bzImage

out="$work/out"
cp "$src/vmlinux" "$out/vmlinux"
cp "$src/arch/x86/boot/bzImage" "$out/bzImage"
cp "$src/System.map" "$out/System.map"
cp "$src/.config" "$out/config"
[ -x "$src/usr/gen_init_cpio" ] && cp "$src/usr/gen_init_cpio" "$out/gen_init_cpio"
printf 'variant=%s\nkey=%s\ntarball=%s\nkernelrelease=%s\n' "$variant" "$key" "$tarball" \
    "$(make -s -C "$src" ARCH=x86_64 kernelrelease 2>/dev/null)" >"$out/build-info"
end=$(date +%s)
echo "build_seconds=$((end - start))" >>"$out/build-info"

# Publish atomically: the cache directory appears only once complete.
rm -rf "$final"
mv "$out" "$final"
say "built in $((end - start)) s"
echo "$final/vmlinux"
