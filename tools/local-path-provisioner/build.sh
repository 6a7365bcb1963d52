#!/usr/bin/env bash
# Builds the pinned rancher/local-path-provisioner (the real node's dynamic volume provisioner) from
# its Go module (tools/local-path-provisioner/go.mod), statically (CGO_ENABLED=0), into a cache
# outside the work tree keyed by the pin, the module files and the Go compiler. `cargo xtask images`
# puts it into the image berth.dev/local-path-provisioner.
# Progress goes to stderr; the last line of stdout is the directory that holds
# `local-path-provisioner` and `VERSION` (the pinned module version).
#   tools/local-path-provisioner/build.sh   build what is missing (about 1-2 minutes cold on 2 cores)
#   BERTH_CACHE=/path                       where the cache lives (default ~/.cache/berth)
#
# The pin: v0.0.30 is the only version the Go module proxy lists
# (`go list -m -versions github.com/rancher/local-path-provisioner`); it has no replace directives.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Bump when the way it is built changes (flags, files copied), to force a rebuild.
recipe=1

build_provisioner() {
  local version
  version=$(go list -m -f '{{.Version}}' github.com/rancher/local-path-provisioner)
  go_build local-path-provisioner "$1/local-path-provisioner" github.com/rancher/local-path-provisioner \
    "-s -w -X main.VERSION=$version"
  echo "$version" > "$1/VERSION"
}

cd "$here"
cached_build local-path-provisioner local-path-provisioner \
  "$(cache_key "$recipe $(go env GOVERSION)" "$(cat go.mod go.sum)")" \
  "local-path-provisioner VERSION" build_provisioner
echo "$built_dir"
