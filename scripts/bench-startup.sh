#!/usr/bin/env bash
# Start-up benchmark (not a test): kvmini's time from main() to its first
# KVM_RUN and its peak RSS beyond the guest RAM that is resident, with
# 256 MiB of guest RAM, over N runs of a test guest that exits at once
# (the fw_cfg/testdev guest). Targets (issue: boot a Linux guest): < 10 ms,
# < 5 MiB.
#
#   scripts/bench-startup.sh [RUNS]     (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
make -s build/kvmini guests >/dev/null
ms=() mib=()
for ((i = 0; i < runs; i++)); do
  out=$(build/kvmini run --test-devices --stats -m 256 -k build/guests/testdev.elf 2>&1 >/dev/null || true)
  ms+=("$(sed -n 's/.*first KVM_RUN \([0-9.]*\) ms.*/\1/p' <<<"$out")")
  mib+=("$(sed -n 's/.*kvmini beyond it \([0-9.]*\) MiB.*/\1/p' <<<"$out")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf 'start-up over %d runs, -m 256:\n' "$runs"
printf '  main() to first KVM_RUN: median %s ms (min %s, max %s); target < 10 ms\n' \
  "$(median "${ms[@]}")" "$(printf '%s\n' "${ms[@]}" | sort -n | head -1)" "$(printf '%s\n' "${ms[@]}" | sort -n | tail -1)"
printf '  peak RSS beyond resident guest RAM: median %s MiB; target < 5 MiB\n' "$(median "${mib[@]}")"
