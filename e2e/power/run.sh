#!/usr/bin/env bash
# The POWER end-to-end tier, one entry point (make e2e-power). On a fresh
# Debian 12 amd64 machine, as root: installs the packages, fetches the ppc64el
# kernel, provides the big-endian COMPAT kernel (shared cache or own build),
# then boots QEMU pseries guest pairs and runs the tests in ./e2e/power.
#
#   e2e/power/run.sh [-update] [go test flags...]
#
# -update rewrites the guest captures in e2e/power/testdata/.
# Environment: MIGRATED_E2E_CACHE (kernel cache dir), MIGRATED_E2E_BUILD_KERNEL=1
# (build the BE kernel even when a prebuilt one is available),
# MIGRATED_E2E_POWER_ARCHES=ppc64le (only the pairs of those arches; CI).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
. "$here/lib.sh"

if [ "${1:-}" = "-update" ]; then
  export MIGRATED_E2E_POWER_UPDATE=1
  shift
fi

step() {
  local name="$1"; shift
  local t0 ms
  t0=$(date +%s%N)
  "$@"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf 'e2e-power step %-30s %5d.%01d s\n' "$name" $((ms / 1000)) $((ms % 1000 / 100)) | tee -a "$times"
}

times="$(mktemp)"
trap 'rm -f "$times"' EXIT
[ "$(id -u)" -eq 0 ] || { echo "e2e-power: run as root (QEMU in a network namespace, apt)" >&2; exit 1; }
step deps bash "$here/deps.sh"
step "kernel ppc64el (fetch/cache)" bash "$here/kernel-le.sh"
# MIGRATED_E2E_POWER_ARCHES=ppc64le (what CI runs) needs no big-endian kernel.
case ",${MIGRATED_E2E_POWER_ARCHES:-ppc64}," in
  *,ppc64,*) step "kernel ppc64 BE (build/cache)" bash "$here/kernel-be.sh" ;;
  *) echo "e2e-power: MIGRATED_E2E_POWER_ARCHES=$MIGRATED_E2E_POWER_ARCHES: no big-endian kernel needed" ;;
esac
cd "$repo"
step "go test e2e/power" env MIGRATED_E2E_POWER=1 go test -count=1 -timeout 40m -v "$@" ./e2e/power/...
echo "e2e-power: summary"
cat "$times"
