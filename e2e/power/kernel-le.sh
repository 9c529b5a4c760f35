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

read -r uri signed < <(power_apt_mirror /etc/apt) || { echo "kernel-le: no apt source for suite bookworm found in /etc/apt" >&2; exit 1; }
[ -n "$signed" ] || signed=/usr/share/keyrings/debian-archive-keyring.gpg
power_log "ppc64el kernel: mirror from the machine's apt sources: $uri"

apt_dir="$cache/apt-ppc64el"
mkdir -p "$apt_dir/etc/preferences.d" "$apt_dir/etc/sources.list.d" "$apt_dir/lists/partial" \
  "$apt_dir/cache/archives/partial" "$apt_dir/state" "$apt_dir/download"
echo "deb [arch=ppc64el signed-by=$signed] $uri bookworm main" > "$apt_dir/etc/sources.list"
: > "$apt_dir/state/status"
apt_opts=(
  -o Dir::Etc::SourceList="$apt_dir/etc/sources.list"
  -o Dir::Etc::SourceParts="$apt_dir/etc/sources.list.d"
  -o Dir::Etc::Preferences="$apt_dir/etc/preferences"
  -o Dir::Etc::PreferencesParts="$apt_dir/etc/preferences.d"
  -o Dir::State="$apt_dir/state"
  -o Dir::State::Lists="$apt_dir/lists"
  -o Dir::State::status="$apt_dir/state/status"
  -o Dir::Cache="$apt_dir/cache"
  -o APT::Architecture=ppc64el
  -o APT::Architectures::=ppc64el
  -o Acquire::Languages=none
  -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
  -o APT::Sandbox::User=root
)
apt-get "${apt_opts[@]}" -q update

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
