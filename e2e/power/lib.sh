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

# power_apt_mirror ETC prints "URI SIGNED-BY" of the first enabled apt source
# for suite bookworm under ETC (normally /etc/apt): deb822 sources.list.d/*.sources
# first, then the classic sources.list and sources.list.d/*.list. SIGNED-BY may
# be empty. It fails when there is none.
power_apt_mirror() {
  local etc="$1" f
  for f in "$etc"/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && suites ~ /(^| )bookworm( |$)/ && enabled != "no" && uris != "") {
          split(uris, u, " "); print u[1] " " signed; found = 1; exit
        }
        types = ""; suites = ""; uris = ""; signed = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[A-Za-z-]+:/ {
        key = tolower(substr($0, 1, index($0, ":") - 1))
        val = substr($0, index($0, ":") + 1); gsub(/^[ \t]+|[ \t]+$/, "", val)
        if (key == "types") types = val
        else if (key == "suites") suites = val
        else if (key == "uris") uris = val
        else if (key == "signed-by") signed = val
        else if (key == "enabled") enabled = tolower(val)
      }
      END { if (!found) flush() }
    ' "$f" | head -n1 | grep . && return 0
  done
  for f in "$etc"/sources.list "$etc"/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [options] URI suite components...
    awk '
      /^[ \t]*deb[ \t]/ {
        line = $0; signed = ""
        if (match(line, /\[[^]]*\]/)) {
          opts = substr(line, RSTART + 1, RLENGTH - 2)
          if (match(opts, /signed-by=[^ ]+/)) signed = substr(opts, RSTART + 10, RLENGTH - 10)
          line = substr(line, 1, index(line, "[") - 1) substr(line, index(line, "]") + 1)
        }
        n = split(line, w, /[ \t]+/)
        for (i = 1; i <= n; i++) if (w[i] == "deb") break
        if (w[i + 2] == "bookworm") { print w[i + 1] " " signed; exit }
      }
    ' "$f" | head -n1 | grep . && return 0
  done
  return 1
}

# power_private_apt DIR ARCH SUITE sets up a private apt configuration in DIR
# for packages of ARCH from SUITE (main) of the machine's own bookworm mirror:
# its own sources list and its own state, lists and cache directories, so the
# machine's dpkg architectures and apt state are left alone. It sets the
# global array apt_opts (pass it to apt-get and apt-cache), creates
# DIR/download, and runs apt-get update. No host name is written anywhere.
power_private_apt() {
  local dir="$1" arch="$2" suite="$3" uri signed
  read -r uri signed < <(power_apt_mirror /etc/apt) || { echo "no apt source for suite bookworm found in /etc/apt" >&2; return 1; }
  [ -n "$signed" ] || signed=/usr/share/keyrings/debian-archive-keyring.gpg
  power_log "apt for $arch $suite: mirror from the machine's apt sources: $uri"
  mkdir -p "$dir/etc/preferences.d" "$dir/etc/sources.list.d" "$dir/lists/partial" \
    "$dir/cache/archives/partial" "$dir/state" "$dir/download"
  echo "deb [arch=$arch signed-by=$signed] $uri $suite main" > "$dir/etc/sources.list"
  : > "$dir/state/status"
  apt_opts=(
    -o Dir::Etc::SourceList="$dir/etc/sources.list"
    -o Dir::Etc::SourceParts="$dir/etc/sources.list.d"
    -o Dir::Etc::Preferences="$dir/etc/preferences"
    -o Dir::Etc::PreferencesParts="$dir/etc/preferences.d"
    -o Dir::State="$dir/state"
    -o Dir::State::Lists="$dir/lists"
    -o Dir::State::status="$dir/state/status"
    -o Dir::Cache="$dir/cache"
    -o APT::Architecture="$arch"
    -o APT::Architectures::="$arch"
    -o Acquire::Languages=none
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o APT::Sandbox::User=root
  )
  apt-get "${apt_opts[@]}" -q update >&2
}

# power_xgcc_dir prints where deps.sh unpacks the powerpc cross gcc drivers;
# put "$(power_xgcc_dir)/usr/bin" first in PATH to use them.
power_xgcc_dir() {
  echo "$(power_cache_dir)/xgcc"
}
