#!/usr/bin/env bash
# Builds the pinned Traefik proxy (only `cmd/traefik`) from its Go module
# (github.com/traefik/traefik/v3), into a cache outside the work tree keyed by the pin and the Go
# compiler. The realnode `gateway` test runs it as a Gateway API implementation on the host.
# Progress goes to stderr; the last line of stdout is the directory that holds `traefik`.
#   tools/traefik/build.sh    build what is missing (cold: see docs/development.md, ~10 CPU-min)
#   BERTH_CACHE=/path         where the cache lives (default ~/.cache/berth)
#
# The pin: v3.6.12, the newest Traefik whose docs say its Kubernetes Gateway provider supports
# Gateway API v1.4 (it is built against sigs.k8s.io/gateway-api v1.4.0; Berth installs the v1.4.1
# CRDs, tools/gateway-api). v3.7 is built against Gateway API v1.5/v1.6.
#
# How: Traefik's go.mod has `replace` and `exclude` directives, which Go ignores in a dependency
# (so `go install …@version` refuses it, and a go.mod of ours requiring it would build other
# modules than Traefik's). The module is downloaded (its zip checksum checked against the
# checksum database, like every module), copied, and built as the main module with its own
# go.mod and go.sum, `-mod=readonly`: exactly the dependency versions Traefik pins.
# The web UI is embedded from webui/static (`//go:embed static`); the module zip holds that folder
# with one file only (the built UI is not in Git), which satisfies the embed: the binary builds as
# is, without the dashboard's assets. Berth does not enable the dashboard.
set -euo pipefail
TRAEFIK_VERSION=v3.6.12
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Bump when the way Traefik is built changes (flags, files copied), to force a rebuild.
recipe=1

build_traefik() {
  local module src
  log traefik "  downloading github.com/traefik/traefik/v3@$TRAEFIK_VERSION"
  module=$(GOFLAGS=-mod=mod go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" |
    awk -F'"' '$2 == "Dir" { print $4 }')
  [ -n "$module" ] && [ -d "$module" ] || { log traefik "  the module has no directory after download"; return 1; }
  src="$1/src"
  cp -r "$module" "$src" && chmod -R u+w "$src"
  (cd "$src" && go_build traefik "$1/traefik" ./cmd/traefik "-s -w \
      -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION \
      -X github.com/traefik/traefik/v3/pkg/version.Codename=berth \
      -X github.com/traefik/traefik/v3/pkg/version.BuildDate=unknown")
  rm -rf "$src"
}

cached_build traefik traefik "$(cache_key "$recipe $TRAEFIK_VERSION $(go env GOVERSION)")" "traefik" build_traefik
echo "$built_dir"
