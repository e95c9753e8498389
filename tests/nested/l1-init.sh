#!/bin/sh
# /init of the hardware-style lane's L1 machine (QEMU TCG, SVM): Debian's cloud
# kernel plus what tests/nested/build-l1-initramfs.sh put in. Busybox sh.
#
# Loads kvm-amd (a real SVM /dev/kvm) and virtio-blk (the outbox disk), then,
# by the kernel command-line word kvmini_lane=:
#   tests  runs tests/integration/hardware_lane.sh (its arguments in
#          /lane/args) in /kvmini, its output on the console; then writes a tar
#          of /kvmini/build (logs, results) to the outbox disk /dev/vda.
#   shell  boots the reference guest with kvmini, console on this console,
#          with kvmini.shell=1 so that the guest gives a busybox shell.
# Then powers the machine off (QEMU runs with -no-reboot).
PATH=/gnu/bin:/bin:/sbin:/usr/bin:/usr/sbin
export PATH HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# bash's process substitution (<(...)) needs /dev/fd, which devtmpfs lacks.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mkdir -p /tmp /root
echo "l1: $(uname -r), $(nproc) CPUs, $(sed -n 's/^MemTotal: *//p' /proc/meminfo) RAM"

for m in irqbypass kvm kvm-amd virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
    insmod "/modules/$m.ko" || echo "l1: insmod $m.ko failed"
done
# What kvm-amd said (nested paging, AVIC...); then only errors on the console.
dmesg | grep -iE 'kvm|svm' | sed 's/^/l1: dmesg: /'
dmesg -n 1
if grep -qw svm /proc/cpuinfo; then echo "l1: CPU shows SVM"; else echo "l1: CPU shows no SVM"; fi
if [ -c /dev/kvm ]; then echo "l1: /dev/kvm present"; else echo "l1: no /dev/kvm after loading kvm-amd"; fi

lane=$(sed -n 's/.*kvmini_lane=\([a-z]*\).*/\1/p' /proc/cmdline)
cd /kvmini || exit 1
export KVMINI=/kvmini/build/kvmini KVMINI_VMLINUX=/kvmini/images/vmlinux
export KVMINI_INITRAMFS=/kvmini/images/initramfs.cpio KVMINI_ROOTFS=/kvmini/images/rootfs.img
case $lane in
    tests)
        export KVMINI_TEST_RESULTS=/kvmini/build/lane-results.txt
        : >"$KVMINI_TEST_RESULTS"
        # shellcheck disable=SC2046
        bash tests/integration/hardware_lane.sh $(cat /lane/args)
        echo "l1: writing the outbox"
        tar -cf /dev/vda -C /kvmini build && sync && echo "l1: outbox written"
        ;;
    shell)
        echo "l1: booting the reference guest (kvmini, $(cat /lane/args)); 'exit' in its shell ends it"
        # shellcheck disable=SC2046
        "$KVMINI" run -k "$KVMINI_VMLINUX" -i "$KVMINI_INITRAMFS" -m 128 \
            -p "console=ttyS0 lpj=5000000 tsc=reliable panic=-1 reboot=k kvmini.shell=1" $(cat /lane/args)
        echo "l1: kvmini exited with status $?"
        ;;
    *)
        echo "l1: no kvmini_lane=tests|shell on the command line"
        ;;
esac
sync
poweroff -f
