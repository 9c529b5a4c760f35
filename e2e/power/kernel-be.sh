#!/usr/bin/env bash
# Provides the big-endian ppc64 kernel with COMPAT (32-bit tasks) for the BE
# guests. No BE kernel is in the reachable archive, so the project builds its
# own from Debian's linux-source-6.1: allnoconfig plus be-compat.config.
# A prebuilt copy in ../shared/guest (relative to the repository root) or
# /work/shared/guest is used as a cache when its SHA256SUMS verify and the
# config fragment beside it sets every option of ours that the tests rely on
# (the required list below).
#
# Output (cached): $CACHE/ppc64/vmlinux, $CACHE/ppc64/source (where it came
# from) and $CACHE/ppc64/fragment.sha256 (the be-compat.config it stands for:
# a kernel cached for another fragment is replaced).
# MIGRATED_E2E_BUILD_KERNEL=1 skips the shared cache and builds (remove
# $CACHE/ppc64 to replace a kernel already cached).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
. "$here/lib.sh"

cache="$(power_cache_dir)"
out="$cache/ppc64"
fragment="$here/be-compat.config"
fragsum="$(sha256sum "$fragment" | cut -d' ' -f1)"

# Options a prebuilt kernel must have for the tests to run what they mean to.
required=(CONFIG_COMPAT=y CONFIG_CHECKPOINT_RESTORE=y CONFIG_MEM_SOFT_DIRTY=y CONFIG_PID_NS=y
  CONFIG_CROSS_MEMORY_ATTACH=y CONFIG_TIME_NS=y)

if [ -s "$out/vmlinux" ] && [ -s "$out/source" ] && [ "$(cat "$out/fragment.sha256" 2>/dev/null)" = "$fragsum" ]; then
  power_log "ppc64 BE kernel: cached ($(cat "$out/source"))"
  exit 0
fi
rm -f "$out/vmlinux" "$out/source" "$out/fragment.sha256"
mkdir -p "$out"

if [ "${MIGRATED_E2E_BUILD_KERNEL:-0}" != 1 ]; then
  for g in "$repo/../shared/guest" /work/shared/guest; do
    [ -f "$g/SHA256SUMS" ] || continue
    xzf="$(cd "$g" && ls vmlinux-ppc64be-compat-*.xz 2>/dev/null | head -n1)" || true
    [ -n "$xzf" ] || continue
    missing=()
    for opt in "${required[@]}"; do
      grep -qx "$opt" "$g/be-compat.config" 2>/dev/null || missing+=("$opt")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
      power_log "ppc64 BE kernel: the shared $g/$xzf lacks ${missing[*]}: building our own"
      continue
    fi
    if (cd "$g" && sha256sum --quiet -c SHA256SUMS); then
      xz -dc "$g/$xzf" > "$out/vmlinux.new"
      mv "$out/vmlinux.new" "$out/vmlinux"
      echo "prebuilt $g/$xzf" > "$out/source"
      echo "$fragsum" > "$out/fragment.sha256"
      power_log "ppc64 BE kernel: from the shared cache $g/$xzf"
      exit 0
    fi
    power_log "ppc64 BE kernel: $g/SHA256SUMS does not verify, ignoring it"
  done
fi

src=/usr/src/linux-source-6.1.tar.xz
[ -f "$src" ] || { echo "kernel-be: $src missing (apt-get install linux-source-6.1; see deps.sh)" >&2; exit 1; }
build="$cache/build-be"
rm -rf "$build"
mkdir -p "$build"
power_log "ppc64 BE kernel: unpacking $src"
tar -xf "$src" -C "$build" --strip-components=1
# The cross gcc unpacked by deps.sh comes first (see deps.sh for why).
export PATH="$(power_xgcc_dir)/usr/bin:$PATH"
make_args=(-C "$build" ARCH=powerpc CROSS_COMPILE=powerpc64-linux-gnu-)
power_log "ppc64 BE kernel: allnoconfig + $fragment"
make "${make_args[@]}" KCONFIG_ALLCONFIG="$fragment" allnoconfig >/dev/null
# Every option the fragment sets must have survived Kconfig's dependency rules.
while IFS= read -r line; do
  case "$line" in CONFIG_*=*) ;; *) continue ;; esac
  key="${line%%=*}"; val="${line#*=}"
  if [ "$val" = n ]; then
    if grep -q "^$key=" "$build/.config"; then echo "kernel-be: $key should be unset" >&2; exit 1; fi
  elif ! grep -qx "$key=$val" "$build/.config"; then
    echo "kernel-be: $line did not survive allnoconfig (got: $(grep "^$key=" "$build/.config" || echo unset))" >&2
    exit 1
  fi
done < "$fragment"
power_log "ppc64 BE kernel: building vmlinux with $(nproc) jobs"
make "${make_args[@]}" -j"$(nproc)" vmlinux >"$build/build.log" 2>&1 || { tail -40 "$build/build.log" >&2; exit 1; }
powerpc64-linux-gnu-strip -o "$out/vmlinux.new" "$build/vmlinux"
mv "$out/vmlinux.new" "$out/vmlinux"
echo "built from $(basename "$src") with be-compat.config sha256 $fragsum" > "$out/source"
echo "$fragsum" > "$out/fragment.sha256"
rm -rf "$build"
power_log "ppc64 BE kernel: built $out/vmlinux"
