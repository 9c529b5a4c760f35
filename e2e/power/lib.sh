# Shared shell helpers for the POWER end-to-end tier. Sourced, not run.

# power_cache_dir prints the directory where fetched and built guest kernels
# are kept between runs: $MIGRATED_E2E_CACHE, else $XDG_CACHE_HOME/migrated-e2e,
# else /var/cache/migrated-e2e.
power_cache_dir() {
  if [ -n "${MIGRATED_E2E_CACHE:-}" ]; then
    echo "$MIGRATED_E2E_CACHE"
  elif [ -n "${XDG_CACHE_HOME:-}" ]; then
    echo "$XDG_CACHE_HOME/migrated-e2e"
  else
    echo /var/cache/migrated-e2e
  fi
}

# power_log prints a timestamped progress line on stderr.
power_log() {
  echo "e2e-power $(date -u +%H:%M:%S) $*" >&2
}
