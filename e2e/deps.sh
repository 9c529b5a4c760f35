#!/usr/bin/env bash
# Installs what the default test suite and the demo need on a fresh Debian 12
# machine, as root. Idempotent: it only calls apt when something is missing.
set -euo pipefail

# gcc-multilib: the i386 workloads build (they run only where the kernel runs
# i386 programs); qemu-user and the powerpc binutils: arch/powerpc's stub and
# gadget tests run the generated code under qemu-user and disassemble it;
# qemu-system-x86: e2e/x86guest runs the i386 tests in an x86_64 guest (this
# kind of VM has IA-32 emulation off); the guest kernel is fetched by the test.
# patchelf: make bench runs CRIU 4 side by side, unpacked from a newer suite by
# e2e/criu/fetch.sh, which points its binary at the unpacked libraries.
pkgs=(gcc gcc-multilib libc6-dev python3 iproute2 util-linux protobuf-compiler cpio
  qemu-user binutils-powerpc64le-linux-gnu binutils-powerpc64-linux-gnu binutils-powerpc-linux-gnu
  qemu-system-x86 patchelf)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi

# Go modules through the module proxy configured in the environment.
go mod download
