#!/usr/bin/env bash
# Builds the pinned Helm client from its Go module (tools/helm/go.mod: helm.sh/helm/v4), into a
# cache outside the work tree keyed by the pin, the module files and the Go compiler.
# Progress goes to stderr; the last line of stdout is the directory that holds `helm`.
#   tools/helm/build.sh       build what is missing (a few minutes cold on 2 cores)
#   BERTH_CACHE=/path         where the cache lives (default ~/.cache/berth)
# The chart's tests and `cargo xtask dev` run this helm: lint, template, install, upgrade, uninstall.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Bump when the way Helm is built changes (flags, files copied), to force a rebuild.
recipe=1

build_helm() {
  local version
  version=$(go list -m -f '{{.Version}}' helm.sh/helm/v4)
  # What `helm version` reports (Helm's own Makefile sets the same variables).
  go_build helm "$1/helm" helm.sh/helm/v4/cmd/helm "-s -w \
      -X helm.sh/helm/v4/internal/version.version=$version \
      -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
}

cd "$here"
cached_build helm helm "$(cache_key "$recipe $(go env GOVERSION)" "$(cat go.mod go.sum)")" "helm" build_helm
echo "$built_dir"
