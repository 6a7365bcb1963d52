#!/usr/bin/env bash
# Builds Kubeflow's profile controller, the onboarding benchmark's anchor (bench/src/bin/onboard.rs),
# from its source in the shared anchors directory, into a cache outside the work tree keyed by a hash
# of that source and the Go compiler. Its code is never copied into this repository.
# Progress goes to stderr; the last line of stdout is the directory that holds `profile-controller`
# and `kubeflow.org_profiles.yaml` (its Profile CRD).
#   tools/kubeflow-profile-controller/build.sh     build what is missing (~10 min cold on 2 cores)
#   BERTH_KUBEFLOW_SRC=/path                         the source (default /work/shared/anchors/kubeflow-profile-controller)
#   BERTH_CACHE=/path                                where the cache lives (default ~/.cache/berth)
#
# The source is kubeflow/dashboard at d842464, components/profile-controller (Apache-2.0). The Go
# module proxy answers 403 for github.com/kubeflow/dashboard/..., so it cannot be `go install`ed by
# version; its go.mod has no replace lines and every dependency comes from the proxy, pinned by its
# go.sum. The pin is therefore the hash of the source files themselves.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
src=${BERTH_KUBEFLOW_SRC:-/work/shared/anchors/kubeflow-profile-controller}
crd=manifests/kustomize/base/crd/kubeflow.org_profiles.yaml
# Bump when the way it is built changes (flags, files copied), to force a rebuild.
recipe=1

[ -f "$src/go.mod" ] && [ -f "$src/main.go" ] || { log kubeflow "no profile controller source in $src (set BERTH_KUBEFLOW_SRC)"; exit 1; }
[ -f "$src/$crd" ] || { log kubeflow "no Profile CRD at $src/$crd"; exit 1; }
grep -q '^module github.com/kubeflow/dashboard/components/profile-controller$' "$src/go.mod" ||
  { log kubeflow "$src/go.mod is not the profile controller's module"; exit 1; }

# Every file that goes into the build (Go sources, go.mod, go.sum, the CRD), by content.
source_hash=$(cd "$src" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum -o -path "./$crd" \) \
  -not -name '*_test.go' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)

build_kubeflow() {
  local out=$1 work
  work=$(mktemp -d)
  # A private copy: the shared source is read-only, and `go build` must not write next to it.
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  (cd "$work" && go_build kubeflow "$out/profile-controller" . "-s -w")
  cp "$src/$crd" "$out/kubeflow.org_profiles.yaml"
  rm -rf "$work"
}

cached_build kubeflow kubeflow-profile-controller \
  "$(cache_key "$recipe $(go env GOVERSION)" "$source_hash")" \
  "profile-controller kubeflow.org_profiles.yaml" build_kubeflow
echo "$built_dir"
