#!/usr/bin/env bash
# virtio-blk device model vs the same image file read directly, in one run:
#   4 KiB random reads (IOPS) and 1 MiB sequential reads (MB/s), through the
#   device (tests/bench_blk.cpp: a polling "guest" driver, the device's own I/O
#   thread) and straight from the file (pread in the same program, `dd`, and
#   `fio` when installed), with the ratio device / direct.
# Both sides read a warm page cache, so the ratio is the device model's cost.
#
# Environment: BENCH_SIZE_MB (image size, 256), BENCH_SECONDS (per test, 3),
# BENCH_DEPTH (requests in flight, 16), BENCH_IMAGE (use this file instead),
# BUILD (build directory, build).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
SIZE_MB=${BENCH_SIZE_MB:-256}
SECS=${BENCH_SECONDS:-3}
DEPTH=${BENCH_DEPTH:-16}
OUT=$BUILD/bench
BIN=$OUT/bench_blk
mkdir -p "$OUT"

SRCS=(tests/bench_blk.cpp devices/pci/*.cpp devices/virtio/*.cpp devices/bus.cpp irqchip/irq_router.cpp
      vmm/guest_memory.cpp)
if [[ ! -x $BIN ]] || [[ -n $(find "${SRCS[@]}" devices/pci devices/virtio tests/unit/virtio_driver_harness.h \
                              -newer "$BIN" 2>/dev/null | head -1) ]]; then
    echo "building $BIN" >&2
    ${CXX:-g++} -std=c++20 -O2 -Wall -Wextra -I. -o "$BIN" "${SRCS[@]}" -lspdlog -lfmt -pthread
fi

IMG=${BENCH_IMAGE:-$OUT/bench.img}
if [[ -z ${BENCH_IMAGE:-} ]] && [[ $(stat -c %s "$IMG" 2>/dev/null || echo 0) -ne $((SIZE_MB << 20)) ]]; then
    echo "creating $IMG ($SIZE_MB MiB)" >&2
    dd if=/dev/urandom of="$IMG" bs=1M count="$SIZE_MB" status=none
fi
cat "$IMG" >/dev/null   # warm the page cache for every contender

# dd: sequential 1 MiB reads of the whole file.
dd_out=$(LC_ALL=C dd if="$IMG" of=/dev/null bs=1M 2>&1 | tail -1)
dd_mbps=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^bytes$/) b = $(i - 1);
                 for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) s = $(i - 1);
                 if (s > 0) printf "%.1f", b / s / 1048576 }' <<<"$dd_out")

fio_iops=""
if command -v fio >/dev/null; then
    fio_iops=$(fio --name=randread --filename="$IMG" --rw=randread --bs=4k --ioengine=psync --runtime="$SECS" \
                   --time_based --readonly --output-format=json 2>/dev/null |
               awk -F: '/"iops"/ { gsub(/[ ,]/, "", $2); print int($2); exit }')
fi

declare -A r
while read -r key value; do r[$key]=$value; done < <("$BIN" "$IMG" "$SECS" "$DEPTH")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "virtio-blk device model vs direct file access ($SIZE_MB MiB image, ${SECS}s per test, queue depth ${r[queue_depth]})"
printf '%-26s %12s %12s %8s\n' "test" "device" "direct" "ratio"
printf '%-26s %12s %12s %8s\n' "4k random read (IOPS)" "${r[randread4k_device_iops]}" \
    "${r[randread4k_direct_iops]}" "$(ratio "${r[randread4k_device_iops]}" "${r[randread4k_direct_iops]}")"
if [[ -n $fio_iops ]]; then
    printf '%-26s %12s %12s %8s\n' "  vs fio psync (IOPS)" "${r[randread4k_device_iops]}" "$fio_iops" \
        "$(ratio "${r[randread4k_device_iops]}" "$fio_iops")"
fi
printf '%-26s %12s %12s %8s\n' "1M sequential read (MB/s)" "${r[seqread1m_device_mbps]}" \
    "${r[seqread1m_direct_mbps]}" "$(ratio "${r[seqread1m_device_mbps]}" "${r[seqread1m_direct_mbps]}")"
printf '%-26s %12s %12s %8s\n' "  vs dd bs=1M (MB/s)" "${r[seqread1m_device_mbps]}" "$dd_mbps" \
    "$(ratio "${r[seqread1m_device_mbps]}" "$dd_mbps")"
