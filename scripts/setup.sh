#!/usr/bin/env bash
# Installs from Debian what kvmini, its tests and its reference guest need.
# Idempotent and quick when everything is there: only missing packages are
# installed. Run by both README commands.
set -euo pipefail

packages=(
  # build of kvmini and its unit tests
  g++ make linux-libc-dev libcli11-dev libspdlog-dev libfmt-dev libgtest-dev libfdt-dev
  # the fuzz target of the virtqueue parser (clang's libFuzzer)
  clang libclang-rt-14-dev
  # the reference guest: kernel source and its build, busybox, disk image
  linux-source-6.1 flex bison bc libelf-dev libssl-dev xz-utils cpio busybox-static e2fsprogs
  # the --stats=json schema check
  python3 python3-jsonschema
  # the hardware-style lane on hosts whose KVM is software (tests/nested/): QEMU's TCG
  qemu-system-x86
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# KVM: say early what is wrong, rather than in the middle of a test run.
if [ ! -e /dev/kvm ]; then
  echo "setup: warning: /dev/kvm does not exist: kvmini cannot run guests on this host" >&2
elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
  echo "setup: warning: no access to /dev/kvm: add $(id -un) to the kvm group (sudo usermod -aG kvm $(id -un))" >&2
fi
