#!/usr/bin/env bash
# Takes the static busybox out of Debian's `busybox-static` package (apt-get download: nothing is
# installed on the machine), into a cache outside the work tree keyed by the package version.
# `cargo xtask images` makes the image berth.dev/helper of it: `sh`, `mkdir` and `rm` for
# local-path-provisioner's helper pods, and `wget`, `nc`, `nslookup`, `timeout` for connection checks.
# Progress goes to stderr; the last line of stdout is the directory that holds `busybox`, `VERSION`
# (the Debian package version) and `APPLETS` (one applet name a line).
#   tools/busybox/build.sh    fetch what is missing (a second or two)
#   BERTH_CACHE=/path         where the cache lives (default ~/.cache/berth)
# busybox is GPL-2.0: the image carries the unmodified Debian binary; its source is Debian's
# `busybox` source package of the same version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
# Bump when the way busybox is taken changes, to force a refetch.
recipe=1

candidate() { apt-cache policy busybox-static 2>/dev/null | awk '/Candidate:/ {print $2}'; }
version=$(candidate)
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  log busybox "no package list knows busybox-static: apt-get update"
  apt-get update -qq >&2
  version=$(candidate)
fi
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  log busybox "apt has no busybox-static package (a Debian or Ubuntu machine with apt is needed)"
  exit 1
fi

fetch_busybox() {
  local dir=$1
  log busybox "  apt-get download busybox-static=$version"
  # As root, apt's download sandbox user cannot write here: download as root.
  (cd "$dir" && apt-get -q -o APT::Sandbox::User=root download "busybox-static=$version" >&2)
  local deb
  deb=$(ls "$dir"/busybox-static_*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || { log busybox "  the download of busybox-static=$version failed"; return 1; }
  dpkg-deb -x "$deb" "$dir/package"
  cp "$dir/package/bin/busybox" "$dir/busybox"
  rm -rf "$dir/package" "$deb"
  "$dir/busybox" --list > "$dir/APPLETS"
  echo "$version" > "$dir/VERSION"
}

cached_build busybox busybox "$(cache_key "$recipe" "$version")" "busybox VERSION APPLETS" fetch_busybox
echo "$built_dir"
