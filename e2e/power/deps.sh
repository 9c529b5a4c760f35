#!/usr/bin/env bash
# Installs what the POWER end-to-end tier needs on a fresh Debian 12 amd64
# machine, as root: QEMU for pseries guests, the powerpc cross toolchains
# (64-bit LE, 64-bit BE, 32-bit BE) with their C libraries, and what building
# the big-endian COMPAT kernel from linux-source-6.1 needs.
#
# The cross gcc drivers (gcc-12-<triplet>) conflict with gcc-multilib, which
# the amd64 tests need for gcc -m32: installing either removes the other. So
# apt installs every part that does not conflict (cpp-12-<triplet> with cc1,
# binutils, libgcc and libc for the target), and the three drivers are
# unpacked from their .debs into $CACHE/xgcc (see lib.sh), beside which the
# installed parts are linked. Both tiers can then live on one machine.
# Idempotent: apt is called only when something is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"

triplets=(powerpc64le-linux-gnu powerpc64-linux-gnu powerpc-linux-gnu)
pkgs=(
  qemu-system-ppc cpio xz-utils iproute2 util-linux ca-certificates
  cpp-12-powerpc64le-linux-gnu binutils-powerpc64le-linux-gnu libgcc-12-dev-ppc64el-cross libc6-dev-ppc64el-cross
  cpp-12-powerpc64-linux-gnu binutils-powerpc64-linux-gnu libgcc-12-dev-ppc64-cross libc6-dev-ppc64-cross
  cpp-12-powerpc-linux-gnu binutils-powerpc-linux-gnu libgcc-12-dev-powerpc-cross libc6-dev-powerpc-cross
  build-essential bc flex bison libelf-dev libssl-dev linux-source-6.1
)
installed="$(dpkg-query -W -f='${Package} ${Status}\n' "${pkgs[@]}" 2>/dev/null | awk '/ install ok installed$/ { print $1 }')"
missing=()
for p in "${pkgs[@]}"; do
  grep -qx "$p" <<<"$installed" || missing+=("$p")
done
need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "e2e-power deps: $* (run as root)" >&2
    exit 1
  fi
}
export DEBIAN_FRONTEND=noninteractive
updated=0
if [ "${#missing[@]}" -gt 0 ]; then
  need_root "missing Debian packages: ${missing[*]}"
  echo "e2e-power deps: installing ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -q
  updated=1
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi

xgcc="$(power_xgcc_dir)"
for t in "${triplets[@]}"; do
  if [ -x "$xgcc/usr/bin/$t-gcc" ] && echo 'int main(void){return 0;}' |
    "$xgcc/usr/bin/$t-gcc" -static -x c -o /dev/null - 2>/dev/null; then
    continue
  fi
  need_root "the $t-gcc driver is not unpacked in $xgcc"
  # The driver must be the version of the installed cc1 (cpp-12-<triplet>).
  ver="$(dpkg-query -W -f='${Version}' "cpp-12-$t")"
  tmp="$(mktemp -d)"
  if ! (cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "gcc-12-$t=$ver"); then
    [ "$updated" = 1 ] || { apt-get -o DPkg::Lock::Timeout=600 update -q; updated=1; }
    (cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "gcc-12-$t=$ver")
  fi
  mkdir -p "$xgcc"
  dpkg-deb -x "$tmp"/gcc-12-"$t"_*.deb "$xgcc"
  rm -rf "$tmp"
  # The relocated driver looks for cc1, crt files and libgcc under its own
  # prefix, and for the target's as, ld and headers in <prefix>/<triplet>.
  lib="$xgcc/usr/lib/gcc-cross/$t/12"
  for f in /usr/lib/gcc-cross/"$t"/12/*; do
    [ -e "$lib/$(basename "$f")" ] || ln -s "$f" "$lib/"
  done
  ln -sfn "/usr/$t" "$xgcc/usr/$t"
  ln -sf "$t-gcc-12" "$xgcc/usr/bin/$t-gcc"
  echo 'int main(void){return 0;}' | "$xgcc/usr/bin/$t-gcc" -static -x c -o /dev/null - ||
    { echo "e2e-power deps: $xgcc/usr/bin/$t-gcc cannot build a static program" >&2; exit 1; }
  echo "e2e-power deps: $t-gcc $ver unpacked in $xgcc"
done
