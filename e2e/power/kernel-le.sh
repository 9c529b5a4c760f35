#!/usr/bin/env bash
# Fetches the Debian ppc64el kernel (vmlinux and the virtio-net modules) for the
# little-endian guests, through a private apt configuration: its own sources
# list for arch ppc64el and its own state, lists and cache directories, so the
# machine's dpkg architectures and apt state are left alone. The mirror is taken
# from the machine's own apt sources; no host name is written here.
#
# Output (cached): $CACHE/ppc64le/vmlinux, $CACHE/ppc64le/modules/*.ko,
# $CACHE/ppc64le/package (the image package name and version).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"

cache="$(power_cache_dir)"
out="$cache/ppc64le"
modules=(virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net)

complete() {
  [ -s "$out/vmlinux" ] && [ -s "$out/package" ] || return 1
  for m in "${modules[@]}"; do [ -s "$out/modules/$m.ko" ] || return 1; done
}
if complete; then
  power_log "ppc64el kernel: cached ($(cat "$out/package"))"
  exit 0
fi

apt_dir="$cache/apt-ppc64el"
power_private_apt "$apt_dir" ppc64el bookworm || { echo "kernel-le: cannot set up apt for ppc64el" >&2; exit 1; }

# The meta package depends on exactly one real image package.
image="$(apt-cache "${apt_opts[@]}" depends linux-image-powerpc64le |
  awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')"
[ -n "$image" ] || { echo "kernel-le: linux-image-powerpc64le names no linux-image-<version> package" >&2; exit 1; }
version="$(apt-cache "${apt_opts[@]}" show "$image" | awk '$1 == "Version:" { print $2; exit }')"
power_log "ppc64el kernel: downloading $image $version"
rm -f "$apt_dir/download/"*.deb
(cd "$apt_dir/download" && apt-get "${apt_opts[@]}" -q download "$image")
deb="$(ls "$apt_dir/download/"*.deb | head -n1)"

tmp="$(mktemp -d "$cache/extract.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"
rm -rf "$out.new"
mkdir -p "$out.new/modules"
vmlinux="$(ls "$tmp"/boot/vmlinux-* | head -n1)"
cp "$vmlinux" "$out.new/vmlinux"
for m in "${modules[@]}"; do
  ko="$(find "$tmp/lib/modules" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n1)"
  [ -n "$ko" ] || { echo "kernel-le: module $m not in $image" >&2; exit 1; }
  case "$ko" in
    *.xz) xz -dc "$ko" > "$out.new/modules/$m.ko" ;;
    *.zst) zstd -dc "$ko" > "$out.new/modules/$m.ko" ;;
    *) cp "$ko" "$out.new/modules/$m.ko" ;;
  esac
done
echo "$image $version" > "$out.new/package"
rm -rf "$out"
mv "$out.new" "$out"
rm -f "$deb"
power_log "ppc64el kernel: ready in $out ($image $version)"
