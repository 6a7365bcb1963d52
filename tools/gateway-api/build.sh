#!/usr/bin/env bash
# Takes the Gateway API's CRDs (standard channel) from their pinned Go module
# (tools/gateway-api/go.mod: sigs.k8s.io/gateway-api) into a cache outside the work tree keyed by
# the pin and the module files. Nothing is compiled.
# Progress goes to stderr; the last line of stdout is the directory that holds `crds/`.
#   tools/gateway-api/build.sh   fetch what is missing (seconds)
#   BERTH_CACHE=/path            where the cache lives (default ~/.cache/berth)
#
# The pin: v1.4.1, the Gateway API release that the pure-Go implementation the module proxy
# serves (Traefik v3.6) is built against; HTTPRoute, Gateway and GatewayClass are v1 in it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Bump when what is taken from the module changes, to force a new copy.
recipe=1

take_crds() {
  local module
  module=$(go_module_dir sigs.k8s.io/gateway-api)
  mkdir -p "$1/crds"
  cp "$module"/config/crd/standard/gateway.networking.k8s.io_*.yaml "$1/crds/"
  chmod -R u+w "$1/crds"
  go list -m -f '{{.Version}}' sigs.k8s.io/gateway-api > "$1/VERSION"
}

cd "$here"
cached_build gateway-api gateway-api "$(cache_key "$recipe $(go env GOVERSION)" "$(cat go.mod go.sum)")" "crds VERSION" take_crds
echo "$built_dir"
