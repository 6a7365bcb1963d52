#!/usr/bin/env bash
# Puts Debian's Chromium, at a pinned version, into Berth's cache for the browser tests
# (tools/e2e/, `cargo xtask e2e`), without installing anything on the system: the pinned .deb files
# are fetched with `apt-get download` and unpacked with `dpkg -x` into
# $cache/chromium-<key>/root, together with the shared libraries (and fonts) this machine lacks.
# Which packages those are is apt's own answer: what `apt-get install --simulate` of the pinned
# chromium would install here. A wrapper, <dir>/bin/chromium, runs the unpacked binary with
# LD_LIBRARY_PATH and a fontconfig file that add the unpacked libraries and fonts to the system's.
# Progress goes to stderr; the last line of stdout is the wrapper's path (Playwright's
# `executablePath`).
#   tools/chromium.sh          fetch what is missing (about 110 MB of .deb files the first time)
#   BERTH_CACHE=/path          where the cache lives (default ~/.cache/berth)
#
# The pin is Debian's exact revision. bookworm-security replaces Chromium every few weeks and the
# mirror keeps only the newest, so on a fresh machine an old pin stops being downloadable. Then
# the script takes the newest revision apt offers of the pin's major version (the one the pinned
# playwright-core was tried with), says so on stderr with the line to bump the pin to, and caches
# it under that revision; with no such revision it fails and says what apt offers. A cached copy
# keeps working either way. Running `apt-get update` needs root (or sudo); it runs only when apt
# does not offer the pin.
set -euo pipefail
CHROMIUM_VERSION=156.0.8078.114-1~deb12u1
# Bump when the way Chromium is unpacked or wrapped changes, to force a refetch.
recipe=1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)

# The packages (name=version) `apt-get install` of revision $1 would add to or change on this
# machine: "Inst NAME [OLD] (NEW ...)" lines, OLD only for an upgrade.
simulate() {
  apt-get install --simulate -qq --no-install-recommends \
    "chromium=$1" "chromium-common=$1" 2>/dev/null |
    awk '/^Inst / { for (i = 3; i <= NF; i++) if ($i ~ /^\(/) { v = substr($i, 2); print $2 "=" v; break } }'
}

# The revisions apt offers of package $1, newest first. (`apt-cache show NAME=VERSION` is no
# test: it succeeds, printing nothing, for a version apt does not have.)
offered() {
  apt-cache madison "$1" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }'
}

# Whether apt offers revision $1 of both packages.
known() {
  offered chromium | grep -qxF "$1" && offered chromium-common | grep -qxF "$1"
}

# The revision to fetch: the pin, or else the newest offered of the pin's major version.
resolve() {
  if ! known "$CHROMIUM_VERSION"; then
    log chromium "apt does not offer chromium $CHROMIUM_VERSION: apt-get update"
    "${sudo[@]}" apt-get update -qq >&2
  fi
  if known "$CHROMIUM_VERSION"; then
    echo "$CHROMIUM_VERSION"
    return
  fi
  local major=${CHROMIUM_VERSION%%.*} candidate
  for candidate in $(offered chromium); do
    if [ "${candidate%%.*}" = "$major" ] && known "$candidate"; then
      log chromium "WARNING: Debian no longer offers chromium $CHROMIUM_VERSION (its security suite keeps only the newest); using $candidate, the newest of major $major. Pin it: CHROMIUM_VERSION=$candidate in tools/chromium.sh"
      echo "$candidate"
      return
    fi
  done
  log chromium "apt offers no chromium $CHROMIUM_VERSION nor another of major $major (offers: $(offered chromium | paste -sd' ')); bump CHROMIUM_VERSION in tools/chromium.sh (and check tools/e2e's playwright-core against it)"
  return 1
}

# Fetches revision $version (resolve) into $1.
fetch_chromium() {
  local dir=$1 packages
  # Chromium itself always (even where the system has it installed), and what the system lacks.
  packages=$( (printf '%s\n' "chromium=$version" "chromium-common=$version"; simulate "$version") | sort -u)
  local count
  count=$(wc -l <<<"$packages")
  log chromium "  downloading $count packages (chromium, chromium-common and what this machine lacks of their dependencies)"
  mkdir -p "$dir/debs" "$dir/root"
  # apt-get download writes into the current directory, as the user running it (no root needed);
  # as root it would hand the download to the _apt user, who may not write in a root's cache.
  local as_root=()
  [ "$(id -u)" != 0 ] || as_root=(-o APT::Sandbox::User=root)
  (cd "$dir/debs" && apt-get download -qq "${as_root[@]}" $packages >&2)
  local deb n=0
  for deb in "$dir"/debs/*.deb; do
    dpkg -x "$deb" "$dir/root"
    n=$((n + 1))
  done
  log chromium "  unpacked $n packages ($(du -sh "$dir/debs" | cut -f1) of .deb files)"
  printf '%s\n' "$packages" >"$dir/packages"
  rm -rf "$dir/debs"

  # Fonts unpacked here (a machine without any) are added to the system's configuration.
  mkdir -p "$dir/etc"
  cat >"$dir/etc/fonts.conf" <<EOF
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>$dir/root/usr/share/fonts</dir>
  <cachedir>$dir/fontconfig-cache</cachedir>
</fontconfig>
EOF
  # pulseaudio/: libpulse0's private libpulsecommon, found through libpulse's RUNPATH once installed.
  local libs="$dir/root/usr/lib/x86_64-linux-gnu:$dir/root/usr/lib/x86_64-linux-gnu/pulseaudio:$dir/root/lib/x86_64-linux-gnu:$dir/root/usr/lib/chromium"
  mkdir -p "$dir/bin"
  cat >"$dir/bin/chromium" <<EOF
#!/bin/sh
# Debian's Chromium $version unpacked by tools/chromium.sh (not installed).
export LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export FONTCONFIG_FILE="$dir/etc/fonts.conf"
exec "$dir/root/usr/lib/chromium/chromium" "\$@"
EOF
  chmod +x "$dir/bin/chromium"
  # The final directory's name is not known yet: the wrapper names it (cached_build moves
  # <dir> to its final place), so write the final path instead of the temporary one.
  sed -i "s|$dir|${dir%.tmp}|g" "$dir/bin/chromium" "$dir/etc/fonts.conf"

  local missing
  missing=$(LD_LIBRARY_PATH=$libs ldd "$dir/root/usr/lib/chromium/chromium" | grep 'not found' || true)
  if [ -n "$missing" ]; then
    log chromium "  libraries still missing after unpacking:"
    printf '%s\n' "$missing" >&2
    return 1
  fi
}

key_of() { cache_key "$recipe $1 $(uname -m)"; }

# Whether the cached copy of revision $1 starts. A copy that no longer does (the machine changed
# under it: a library it relied on was removed) is removed, to be fetched again.
cached_starts() {
  local bin=$cache/chromium-$(key_of "$1")/bin/chromium
  [ -x "$bin" ] || return 1
  "$bin" --headless --no-sandbox --version >/dev/null 2>&1 && return 0
  log chromium "the cached Chromium $1 no longer starts here; fetching it again"
  rm -rf "$cache/chromium-$(key_of "$1")"
  return 1
}

# The pin when cached (no apt at all); else what resolve picks, cached or not.
version=$CHROMIUM_VERSION
if ! cached_starts "$version"; then
  version=$(resolve)
  [ "$version" = "$CHROMIUM_VERSION" ] || cached_starts "$version" || true
fi
cached_build chromium chromium "$(key_of "$version")" "bin/chromium" fetch_chromium
log chromium "$("$built_dir/bin/chromium" --headless --no-sandbox --version 2>/dev/null)"
echo "$built_dir/bin/chromium"
