#!/usr/bin/env bash
# Fetches CRIU 4.x for the benchmark's side-by-side run, where the machine
# has none: Debian 12's criu 3.17 does not run on newer kernels (it does not
# know [vvar_vclock]), and CRIU 4 is packaged only in the newer suites. The
# packages (criu and everything it links, from suite $MIGRATED_CRIU_SUITE,
# default sid) are fetched through a private apt configuration whose mirror is
# taken from the machine's own apt sources (no host name is written here),
# unpacked into a private root, and the criu binary is pointed at that root's
# loader and libraries with patchelf. Nothing is installed on the machine.
#
# Output (cached): $CACHE/criu/bin/criu, and $CACHE/criu/version.
# Prints the path of the criu binary on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../power/lib.sh"

cache="$(power_cache_dir)"
out="$cache/criu"
suite="${MIGRATED_CRIU_SUITE:-sid}"
log() { echo "criu-fetch $(date -u +%H:%M:%S) $*" >&2; }

if [ -x "$out/bin/criu" ] && [ -s "$out/version" ] && "$out/bin/criu" --version >/dev/null 2>&1; then
  log "cached: $(cat "$out/version")"
  echo "$out/bin/criu"
  exit 0
fi
command -v patchelf >/dev/null || { echo "criu-fetch: patchelf is missing (apt-get install patchelf)" >&2; exit 1; }

read -r uri signed < <(power_apt_mirror /etc/apt) || { echo "criu-fetch: no apt source for suite bookworm found in /etc/apt" >&2; exit 1; }
[ -n "$signed" ] || signed=/usr/share/keyrings/debian-archive-keyring.gpg
log "mirror from the machine's apt sources: $uri, suite $suite"

apt_dir="$cache/apt-criu-$suite"
mkdir -p "$apt_dir/etc/preferences.d" "$apt_dir/etc/sources.list.d" "$apt_dir/lists/partial" \
  "$apt_dir/cache/archives/partial" "$apt_dir/state" "$apt_dir/download"
echo "deb [arch=amd64 signed-by=$signed] $uri $suite main" > "$apt_dir/etc/sources.list"
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
  -o APT::Architecture=amd64
  -o APT::Architectures::=amd64
  -o Acquire::Languages=none
  -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
  -o APT::Sandbox::User=root
)
apt-get "${apt_opts[@]}" -q update >&2

version="$(apt-cache "${apt_opts[@]}" show criu | awk '$1 == "Version:" { print $2; exit }')"
case "$version" in
  [4-9]*) ;;
  *) echo "criu-fetch: suite $suite has criu '$version', not 4.x" >&2; exit 1 ;;
esac
# criu and what it needs to run: the Depends and Pre-Depends closure.
mapfile -t pkgs < <(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances criu | awk '/^[a-z0-9]/ { print $1 }' | sort -u)
log "downloading criu $version and ${#pkgs[@]} packages"
rm -f "$apt_dir/download/"*.deb
(cd "$apt_dir/download" && apt-get "${apt_opts[@]}" -q download "${pkgs[@]}" >&2)

tmp="$out.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/root" "$tmp/bin"
for deb in "$apt_dir/download/"*.deb; do
  dpkg-deb -x "$deb" "$tmp/root"
done
root="$out/root"
loader="$(cd "$tmp/root" && ls usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 2>/dev/null | head -n1 || true)"
[ -n "$loader" ] || { echo "criu-fetch: no ld-linux-x86-64.so.2 in the unpacked packages" >&2; exit 1; }
cp "$tmp/root/usr/sbin/criu" "$tmp/bin/criu"
patchelf --set-interpreter "$root/$loader" \
  --force-rpath --set-rpath "$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu" "$tmp/bin/criu"
echo "$version" > "$tmp/version"
rm -rf "$out"
mv "$tmp" "$out"
"$out/bin/criu" --version >&2
log "ready: criu $version in $out"
echo "$out/bin/criu"
