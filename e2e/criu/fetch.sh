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

apt_dir="$cache/apt-criu-$suite"
power_private_apt "$apt_dir" amd64 "$suite" || { echo "criu-fetch: cannot set up apt for suite $suite" >&2; exit 1; }

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
