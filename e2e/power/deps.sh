#!/usr/bin/env bash
# Installs the Debian packages the POWER end-to-end tier needs on a fresh
# Debian 12 amd64 machine, as root: QEMU for pseries guests, the powerpc cross
# compilers (64-bit LE, 64-bit BE, 32-bit BE) with their C libraries, and what
# building the big-endian COMPAT kernel from linux-source-6.1 needs.
# Idempotent: apt is called only when something is missing.
set -euo pipefail

pkgs=(
  qemu-system-ppc cpio xz-utils iproute2 util-linux
  gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross
  gcc-powerpc64-linux-gnu libc6-dev-ppc64-cross
  gcc-powerpc-linux-gnu libc6-dev-powerpc-cross
  build-essential bc flex bison libelf-dev libssl-dev linux-source-6.1
  ca-certificates
)
installed="$(dpkg-query -W -f='${Package} ${Status}\n' "${pkgs[@]}" 2>/dev/null | awk '/ install ok installed$/ { print $1 }')"
missing=()
for p in "${pkgs[@]}"; do
  grep -qx "$p" <<<"$installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "e2e-power deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "e2e-power deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
