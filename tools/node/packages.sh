#!/usr/bin/env bash
# Installs the Debian packages the real node takes from the distribution instead of building:
# runc (the OCI runtime containerd's shim runs), the CNI plugins (bridge, host-local, loopback,
# portmap), iptables (kube-proxy, kube-router and the node's guard rules; the nf_tables backend,
# Debian's default), ipset (kube-router's NetworkPolicy sets) and nftables (`nft`, with which the
# node's cleanup deletes the tables a run created).
# Idempotent: a no-op when every package is installed at its pinned upstream version; otherwise
# `apt-get update` once and `apt-get install` of the exact Debian revision on offer for that
# upstream version. Debian replaces revisions on security updates (1.1.5+ds1-1+deb12u1 ->
# +deb12u2), so the pin is the upstream version; a different upstream version fails the script.
# Needs root (or sudo) for the install; prints nothing on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"

# package upstream-version
pins=(
  "runc 1.1.5"
  "containernetworking-plugins 1.1.1"
  "iptables 1.8.9"
  "ipset 7.17"
  "nftables 1.0.6"
)

upstream() { local v=${1#*:}; echo "${v%%[-+~]*}"; }

missing=()
for pin in "${pins[@]}"; do
  read -r pkg want <<<"$pin"
  have=$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$pkg" 2>/dev/null || true)
  if [[ $have == "installed "* ]] && [ "$(upstream "${have#installed }")" = "$want" ]; then
    continue
  fi
  missing+=("$pkg=$want")
done
[ ${#missing[@]} = 0 ] && { log node-packages "installed: ${pins[*]/ /=}"; exit 0; }

sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
log node-packages "installing ${missing[*]} (apt-get)"
"${sudo[@]}" apt-get update -qq >&2
install=()
for item in "${missing[@]}"; do
  pkg=${item%%=*} want=${item#*=}
  # The newest revision apt offers whose upstream version is the pinned one.
  version=$(apt-cache madison "$pkg" | awk -F'|' '{gsub(/ /, "", $2); print $2}' |
    while read -r v; do [ "$(upstream "$v")" = "$want" ] && { echo "$v"; break; }; done)
  if [ -z "$version" ]; then
    log node-packages "apt offers no $pkg $want (offers: $(apt-cache madison "$pkg" | awk -F'|' '{print $2}' | tr -d ' ' | paste -sd' '))"
    exit 1
  fi
  install+=("$pkg=$version")
done
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${install[@]}" >&2
log node-packages "installed ${install[*]}"
