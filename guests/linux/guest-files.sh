# Sourced by build-initramfs.sh and build-rootfs.sh: fills a staging directory
# with the guest's userspace (a static busybox, applet links, /init).
#
# KVMINI_BUSYBOX overrides the busybox binary (default: Debian busybox-static's
# /bin/busybox).

guest_busybox=${KVMINI_BUSYBOX:-/bin/busybox}

# Applets the init script (and a person poking around on a real-KVM host) uses.
guest_bin_applets="sh ash cat echo ls mount umount mkdir dmesg sleep uname dd sync head yes sha256sum cut setsid cttyhack grep ps"
guest_sbin_applets="reboot poweroff halt"

guest_check_busybox() {
    [ -f "$guest_busybox" ] && [ -x "$guest_busybox" ] ||
        { echo "error: $guest_busybox not found (apt-get install busybox-static)" >&2; return 1; }
    # Only a statically linked busybox runs without a libc in the guest.
    if command -v readelf >/dev/null && readelf -l "$guest_busybox" 2>/dev/null | grep -q 'INTERP'; then
        echo "error: $guest_busybox is dynamically linked; install busybox-static" >&2
        return 1
    fi
}

# The first program the guest runs. It is /init in the initramfs and
# /sbin/init on the ext2 root. Kernel command-line words it reads (dotted, so
# the kernel passes them neither as arguments nor environment to init):
#   kvmini.disktest=DEV  write 1 MiB of a known pattern (guest_disk_pattern)
#                        at offset 1 MiB of DEV with O_DIRECT, sync, read it
#                        back with O_DIRECT and print KVMINI-DISK-OK SHA256 or
#                        KVMINI-DISK-BAD SHA256; the host then checks the
#                        image file itself (tests/integration/boot_test.sh).
#   kvmini.diskload=N    disk load on 2 vCPUs: 16 processes each read the
#                        root disk /dev/vda N times whole, 4 KiB at a time
#                        with O_DIRECT; then KVMINI-LOAD-DONE.
#   kvmini.shell=1       give a busybox shell on the console before the reboot
#                        (scripts/run-reference.sh --nested).
guest_write_init() {
    cat >"$1" <<'INIT'
#!/bin/sh
# init of the kvmini reference guest (written by guests/linux/guest-files.sh)
PATH=/bin:/sbin
export PATH
echo KVMINI-INIT-OK
mount -t proc proc /proc
disk= shell= load=
for w in $(cat /proc/cmdline); do
    case $w in
        kvmini.disktest=*) disk=${w#*=} ;;
        kvmini.diskload=*) load=${w#*=} ;;
        kvmini.shell=1) shell=1 ;;
    esac
done
if [ -n "$disk" ]; then
    pattern() { yes kvmini-disk-pattern | head -c 1048576; }
    want=$(pattern | sha256sum | cut -d' ' -f1)
    pattern | dd of="$disk" bs=64k seek=16 oflag=direct iflag=fullblock conv=fsync 2>/dev/null
    sync
    got=$(dd if="$disk" bs=64k skip=16 count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then echo "KVMINI-DISK-OK $got"; else echo "KVMINI-DISK-BAD $got"; fi
fi
if [ -n "$load" ]; then
    for p in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do
        ( n=0; while [ "$n" -lt "$load" ]; do dd if=/dev/vda of=/dev/null bs=4k iflag=direct 2>/dev/null; n=$((n + 1)); done ) &
    done
    wait
    echo KVMINI-LOAD-DONE
fi
cat /proc/interrupts
if [ -n "$shell" ]; then
    # The kernel mounts devtmpfs itself only on a disk root; cttyhack needs /dev/ttyS0.
    [ -e /dev/ttyS0 ] || mount -t devtmpfs devtmpfs /dev
    echo "kvmini reference guest: busybox shell; 'exit' reboots, which ends kvmini"
    setsid cttyhack sh
fi
# No ACPI, so power-off cannot end the VM; a reset (reboot=k: i8042) does.
reboot -f
INIT
    chmod 0755 "$1"
}

# What the init's kvmini.disktest writes at offset 1 MiB, for the host's check:
# 1 MiB of "kvmini-disk-pattern" lines (the guest makes it with busybox yes/head).
guest_disk_pattern() { yes kvmini-disk-pattern | head -c 1048576; }
guest_disk_pattern_offset=1048576

# guest_stage DIR: populate DIR (which must exist and be empty).
guest_stage() {
    local d=$1 a
    mkdir -p "$d/bin" "$d/sbin" "$d/dev" "$d/proc" "$d/sys" "$d/etc" "$d/root" "$d/tmp"
    cp "$guest_busybox" "$d/bin/busybox"
    chmod 0755 "$d/bin/busybox"
    for a in $guest_bin_applets; do ln -s busybox "$d/bin/$a"; done
    for a in $guest_sbin_applets; do ln -s ../bin/busybox "$d/sbin/$a"; done
    guest_write_init "$d/init"
    guest_write_init "$d/sbin/init"
    chmod 1777 "$d/tmp"
    # Fixed timestamps so that identical inputs give identical images.
    find "$d" -exec touch -h -d "@${SOURCE_DATE_EPOCH:-0}" {} +
}

# guest_newc_entry NAME MODE(octal) INO RDEVMAJOR RDEVMINOR: one data-less entry.
guest_newc_entry() {
    local name=$1 mode=$2 ino=$3 rmaj=$4 rmin=$5
    local namesize=$(( ${#name} + 1 )) nlink=1
    [ $(( mode & 0170000 )) -eq $(( 0040000 )) ] && nlink=2
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        "$ino" "$mode" 0 0 "$nlink" "${guest_newc_mtime:-0}" 0 0 0 "$rmaj" "$rmin" "$namesize" 0
    printf '%s\0' "$name"
    # header (110 bytes) + name is padded to a multiple of 4
    local pad=$(( (4 - (110 + namesize) % 4) % 4 ))
    [ $pad -eq 0 ] || head -c "$pad" /dev/zero
}

# guest_dev_console_cpio MTIME: a newc archive holding only /dev and
# /dev/console (5:1), written directly so that no root is needed (mknod). The
# kernel unpacks concatenated archives in order, so it goes first.
guest_dev_console_cpio() {
    local guest_newc_mtime=$1
    guest_newc_entry dev $(( 0040755 )) 1 0 0
    guest_newc_entry dev/console $(( 0020600 )) 2 5 1
    guest_newc_entry 'TRAILER!!!' 0 0 0 0
}
