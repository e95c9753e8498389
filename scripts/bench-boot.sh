#!/usr/bin/env bash
# Boot benchmark (not a test): wall seconds from VM start to the guest line
# "Run /init as init process", for kvmini and for QEMU microvm, in one run.
#
#   scripts/bench-boot.sh [options] [MODE...]
#
# MODE is one of
#   kvmini-kernel  build/kvmini run ... --irqchip kernel      (default)
#   kvmini-split   build/kvmini run ... --irqchip split
#   kvmini-<X>     build/kvmini run ... --irqchip <X>
#   qemu-kernel    QEMU microvm, -accel kvm,kernel-irqchip=on  (default)
#   qemu-split     QEMU microvm, -accel kvm,kernel-irqchip=split
#   qemu-off       QEMU microvm, -accel kvm,kernel-irqchip=off
#   all            kvmini-kernel kvmini-split kvmini-user qemu-kernel qemu-split qemu-off
# Default: kvmini-kernel qemu-kernel.
#
# Options:
#   --timeout S       give up on one boot after S seconds (default 300)
#   --kvmini PATH     the kvmini binary (default: build/kvmini in the repo)
#   --kernel PATH     vmlinux to boot (default: guests/linux/build-kernel.sh
#                     --variant noint3, built on first use, then cached)
#   --initramfs PATH  initramfs (default: built by guests/linux/build-initramfs.sh)
#   --extra ARGS      appended to every guest command line (e.g. initcall_debug)
#   --repeat N        boot every mode N times, interleaved, and report the
#                     fastest run (default 1; the host may be busy)
#   --logs DIR        keep each VM's console log in DIR (default: a temp dir,
#                     printed at the end)
#
# The kernel is the noint3 variant for every VMM, so all of them boot the same
# image (QEMU cannot complete the int3 self-test on this host). Each VM is
# stopped as soon as the line has been seen. Besides wall seconds the table
# shows the CPU seconds the VM process had used by then, which other load on
# the host disturbs much less. Ratios kvmini/QEMU are printed
# for every pair of measured modes with the same irqchip mode (kvmini's
# user mode against QEMU's kernel-irqchip=off), and against qemu-kernel; and
# each kvmini mode against kvmini-kernel.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
timeout_s=300
kvmini="$repo/build/kvmini"
kernel=
initramfs=
extra=
logdir=
modes=()
repeat=1
marker='Run /init as init process'
guest_mem=64

base_cmdline="console=ttyS0 lpj=5000000 tsc=reliable panic=-1"
kvmini_cmdline="$base_cmdline reboot=k"
# QEMU passes the host CPUID through, so the guest must be kept off the
# instructions this host's KVM cannot emulate (see /work/shared/HOST-KVM.md).
qemu_cmdline="$base_cmdline noxsave clearcpuid=smap,popcnt,xsave"
qemu_cpu="qemu64,-xsave,-popcnt,-smap,-smep,+xsaveerptr"

usage() { sed -n '2,34s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit "${1:-2}"; }
say() { printf 'bench-boot: %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
    case $1 in
        --timeout) timeout_s=$2; shift 2 ;;
        --kvmini) kvmini=$2; shift 2 ;;
        --kernel) kernel=$2; shift 2 ;;
        --initramfs) initramfs=$2; shift 2 ;;
        --extra) extra=$2; shift 2 ;;
        --logs) logdir=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        -h|--help) usage 0 ;;
        all) modes+=(kvmini-kernel kvmini-split kvmini-user qemu-kernel qemu-split qemu-off); shift ;;
        kvmini-?*|qemu-kernel|qemu-split|qemu-off) modes+=("$1"); shift ;;
        *) say "unknown argument: $1"; usage ;;
    esac
done
[ ${#modes[@]} -gt 0 ] || modes=(kvmini-kernel qemu-kernel)
# Each mode once, in the order given.
declare -A seen=()
uniq_modes=()
for m in "${modes[@]}"; do
    [ -n "${seen[$m]+set}" ] || { seen[$m]=1; uniq_modes+=("$m"); }
done
modes=("${uniq_modes[@]}")
[[ $repeat =~ ^[1-9][0-9]*$ ]] || { say "--repeat needs a positive number"; exit 2; }
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || { say "--timeout needs a positive number of seconds"; exit 2; }
if [ -n "$extra" ]; then
    kvmini_cmdline="$kvmini_cmdline $extra"
    # Linux reads only the first clearcpuid=: merge a clearcpuid= from
    # --extra into QEMU's own list (kvmini merges it into its safe profile).
    extra_clear=$(sed -n 's/.*clearcpuid=\([^ ]*\).*/\1/p' <<<"$extra")
    if [ -n "$extra_clear" ]; then
        qemu_cmdline="${qemu_cmdline/clearcpuid=smap,popcnt,xsave/clearcpuid=smap,popcnt,xsave,$extra_clear}"
        extra=$(sed 's/clearcpuid=[^ ]*//' <<<"$extra")
    fi
    qemu_cmdline="$qemu_cmdline $extra"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-bench.XXXXXX")
vm_pid=
cleanup() {
    if [ -n "$vm_pid" ]; then kill -KILL -- "-$vm_pid" 2>/dev/null; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -z "$logdir" ]; then
    logdir=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-bench-logs.XXXXXX")
fi
mkdir -p "$logdir"

if [ -z "$kernel" ]; then
    say "getting the noint3 kernel (the first time this compiles it: minutes)"
    kernel=$("$repo/guests/linux/build-kernel.sh" --variant noint3 | tail -n 1) || { say "kernel build failed"; exit 1; }
fi
if [ -z "$initramfs" ]; then
    initramfs=$("$repo/guests/linux/build-initramfs.sh" "$tmp/initramfs.cpio" | tail -n 1) || { say "initramfs build failed"; exit 1; }
fi
[ -f "$kernel" ] || { say "no kernel at $kernel"; exit 1; }
[ -f "$initramfs" ] || { say "no initramfs at $initramfs"; exit 1; }

# Command line of the VM for MODE, one word per line in the array "cmd".
vm_command() {
    local mode=$1
    case $mode in
        kvmini-*)
            cmd=("$kvmini" run -k "$kernel" -i "$initramfs" -p "$kvmini_cmdline"
                 -m "$guest_mem" --irqchip "${mode#kvmini-}") ;;
        qemu-*)
            local irqchip=${mode#qemu-}
            [ "$irqchip" = kernel ] && irqchip=on
            cmd=(qemu-system-x86_64 -M microvm -accel "kvm,kernel-irqchip=$irqchip"
                 -cpu "$qemu_cpu" -m "$guest_mem" -smp 1 -nographic -no-reboot
                 -kernel "$kernel" -initrd "$initramfs" -append "$qemu_cmdline") ;;
    esac
}

# Wall clock in microseconds, and the seconds (one decimal) between two of them.
usecs() { local t=${EPOCHREALTIME/[.,]/}; echo $(( 10#$t )); }
secs_since() { local d=$(( $2 - $1 )); printf '%d.%d' $(( d / 1000000 )) $(( d % 1000000 / 100000 )); }
# CPU seconds (user + system, all threads) PID has used so far: robust
# against other load on the host, unlike the wall clock.
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_secs() {
    local f
    f=$(sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null) || { echo -; return; }
    set -- $f   # field 1 is now the state; utime and stime are 12 and 13
    awk -v u="${12}" -v s="${13}" -v t="$clk_tck" 'BEGIN { printf "%.1f", (u + s) / t }'
}
# Is PID still running (not yet exited: zombies count as gone)?
running() {
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# run_mode MODE LOG: boots once; sets result_secs, result_cpu (CPU seconds of
# the VM process at the marker), result_first (seconds to the kernel's first
# line, "Linux version ...", i.e. to when the console came up) and
# result_status.
run_mode() {
    local mode=$1 log=$2 fifo="$tmp/console.fifo"
    result_secs=- result_cpu=- result_first=- result_status=
    vm_command "$mode"
    if ! command -v "${cmd[0]}" >/dev/null; then
        result_status="skipped: ${cmd[0]} not found"
        return
    fi
    rm -f "$fifo"
    mkfifo "$fifo"
    {
        printf '# mode %s\n# command:' "$mode"
        printf ' %q' "${cmd[@]}"
        printf '\n'
    } >"$log"

    local start now left line
    # Own session, so the VM and anything it starts can be stopped together.
    start=$(usecs)
    setsid "${cmd[@]}" </dev/null >"$fifo" 2>&1 &
    vm_pid=$!
    exec 8<"$fifo"
    while :; do
        left=$(( timeout_s * 1000000 - ($(usecs) - start) ))
        if [ $left -le 0 ]; then
            result_status="timeout after ${timeout_s}s"
            break
        fi
        if IFS= read -r -t "$(( left / 1000000 )).$(printf '%06d' $(( left % 1000000 )))" -u 8 line; then
            now=$(usecs)
            line=${line%$'\r'}
            printf '%s\n' "$line" >>"$log"
            if [ "$result_first" = - ] && [[ $line == *"Linux version"* ]]; then
                result_first=$(secs_since "$start" "$now")
            fi
            if [[ $line == *"$marker"* ]]; then
                result_secs=$(secs_since "$start" "$now")
                result_cpu=$(cpu_secs "$vm_pid")
                result_status=ok
                break
            fi
        else
            local rc=$?
            if [ $rc -gt 128 ]; then
                result_status="timeout after ${timeout_s}s"
            else
                # EOF: the VM closed its output (exited) before the marker.
                wait "$vm_pid"
                result_status="VM exited with status $? before the marker"
                vm_pid=
            fi
            break
        fi
    done
    if [ -n "$vm_pid" ]; then
        kill -TERM -- "-$vm_pid" 2>/dev/null
        local i
        for i in $(seq 25); do
            running "$vm_pid" || break
            sleep 0.2
        done
        kill -KILL -- "-$vm_pid" 2>/dev/null
        wait "$vm_pid" 2>/dev/null
        vm_pid=
    fi
    exec 8<&-
    rm -f "$fifo"
    printf '# result: %s, %s s wall, %s s cpu\n' "$result_status" "$result_secs" "$result_cpu" >>"$log"
}

declare -A secs cpu status first nok
say "kernel    $kernel"
say "initramfs $initramfs"
for mode in "${modes[@]}"; do
    secs[$mode]=- cpu[$mode]=- first[$mode]=- status[$mode]= nok[$mode]=0
done
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
for round in $(seq "$repeat"); do
    for mode in "${modes[@]}"; do
        log="$logdir/$mode.log"
        [ "$repeat" = 1 ] || log="$logdir/$mode.$round.log"
        label=
        [ "$repeat" = 1 ] || label=", run $round of $repeat"
        say "booting $mode$label (timeout ${timeout_s}s) ..."
        run_mode "$mode" "$log"
        say "  $mode: ${result_secs}s to '$marker', ${result_cpu} CPU s ($result_status)"
        if [ "$result_status" = ok ]; then
            nok[$mode]=$(( nok[$mode] + 1 ))
            if [ "${secs[$mode]}" = - ] || lt "$result_secs" "${secs[$mode]}"; then
                secs[$mode]=$result_secs first[$mode]=$result_first
            fi
            if [ "$result_cpu" != - ] && { [ "${cpu[$mode]}" = - ] || lt "$result_cpu" "${cpu[$mode]}"; }; then
                cpu[$mode]=$result_cpu
            fi
        else
            status[$mode]=$result_status   # the last failure is shown
        fi
    done
done
for mode in "${modes[@]}"; do
    if [ "${nok[$mode]}" = "$repeat" ]; then
        status[$mode]=ok
    elif [ "${nok[$mode]}" -gt 0 ]; then
        status[$mode]="ok ${nok[$mode]}/$repeat; ${status[$mode]}"
    fi
done

echo
[ "$repeat" = 1 ] || echo "fastest of $repeat runs per mode"
printf '%-16s %10s %12s %9s  %s\n' mode "console s" "Run /init s" "VM cpu s" status
printf '%-16s %10s %12s %9s  %s\n' ---- --------- ----------- -------- ------
for mode in "${modes[@]}"; do
    printf '%-16s %10s %12s %9s  %s\n' "$mode" "${first[$mode]}" "${secs[$mode]}" "${cpu[$mode]}" "${status[$mode]}"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printed=0
for k in "${modes[@]}"; do
    [[ $k == kvmini-* ]] && [ "${secs[$k]}" != - ] || continue
    peer=qemu-${k#kvmini-}
    [ "$peer" = qemu-user ] && peer=qemu-off  # QEMU's name for an irqchip all in userspace
    for q in "$peer" qemu-kernel; do
        [ -n "${secs[$q]+set}" ] && [ "${secs[$q]}" != - ] || continue
        [ $printed = 1 ] || { echo; echo "ratios kvmini / QEMU, to '$marker':"; printed=1; }
        printf '  %-14s / %-12s  wall %s   cpu %s\n' "$k" "$q" "$(ratio "${secs[$k]}" "${secs[$q]}")" \
            "$( [ "${cpu[$k]}" != - ] && [ "${cpu[$q]}" != - ] && ratio "${cpu[$k]}" "${cpu[$q]}" || echo -)"
        [ "$q" = qemu-kernel ] && break
    done
done
[ $printed = 1 ] || { echo; echo "no kvmini/QEMU ratio: need a successful boot of both"; }
if [ -n "${secs[kvmini-kernel]+set}" ] && [ "${secs[kvmini-kernel]}" != - ]; then
    echo; echo "ratios to kvmini's kernel mode:"
    for k in "${modes[@]}"; do
        [[ $k == kvmini-* ]] && [ "$k" != kvmini-kernel ] && [ "${secs[$k]}" != - ] || continue
        printf '  %-14s / %-12s  wall %s   cpu %s\n' "$k" kvmini-kernel "$(ratio "${secs[$k]}" "${secs[kvmini-kernel]}")" \
            "$( [ "${cpu[$k]}" != - ] && [ "${cpu[kvmini-kernel]}" != - ] && ratio "${cpu[$k]}" "${cpu[kvmini-kernel]}" || echo -)"
    done
fi
echo
echo "console logs: $logdir"
