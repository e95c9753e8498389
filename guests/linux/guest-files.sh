# Sourced by build-initramfs.sh and build-rootfs.sh: fills a staging directory
# with the guest's userspace (a static busybox, applet links, /init).
#
# KVMINI_BUSYBOX overrides the busybox binary (default: Debian busybox-static's
# /bin/busybox).

guest_busybox=${KVMINI_BUSYBOX:-/bin/busybox}

# Applets the init script (and a person poking around on a real-KVM host) uses.
guest_bin_applets="sh ash cat echo ls mount umount mkdir dmesg sleep uname"
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
# /sbin/init on the ext2 root.
guest_write_init() {
    cat >"$1" <<'INIT'
#!/bin/sh
# init of the kvmini reference guest (written by guests/linux/guest-files.sh)
PATH=/bin:/sbin
export PATH
echo KVMINI-INIT-OK
mount -t proc proc /proc
cat /proc/interrupts
# No ACPI, so power-off cannot end the VM; a reset (reboot=k: i8042) does.
reboot -f
INIT
    chmod 0755 "$1"
}

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
