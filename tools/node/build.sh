#!/usr/bin/env bash
# Builds the real node's components from their pinned Go modules, into the cache outside the work
# tree keyed by the pins, and installs the Debian packages it takes from the distribution
# (tools/node/packages.sh). Progress goes to stderr; the last line of stdout is the directory that
# holds the binaries:
#   kubelet, kube-proxy           k8s.io/kubernetes, the same pin as the control plane (tools/kube)
#   containerd, containerd-shim-runc-v2, ctr
#                                 github.com/containerd/containerd/v2 (tools/containerd)
#   kube-router                   github.com/cloudnativelabs/kube-router/v2 (tools/kube-router),
#                                 run as the NetworkPolicy enforcer only
#   coredns                       github.com/coredns/coredns with the plugins cluster DNS uses
#                                 (tools/coredns)
#   tools/node/build.sh           build what is missing (a cold build takes about 10 minutes on 2
#                                 cores, less once the control plane is built: they share packages)
#   BERTH_CACHE=/path             where the cache lives (default ~/.cache/berth)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools=$(cd "$here/.." && pwd)
source "$tools/versions.env"
source "$tools/lib.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
goversion=$(go env GOVERSION)
# Bump when the way a component is built changes (flags, tags, files copied), to force a rebuild.
recipe=1

bash "$here/packages.sh"

# A component's key covers the recipe, its module files and the Go compiler (and, for the kubelet,
# the Kubernetes version the ldflags carry).
key_of() { cache_key "$recipe $goversion ${2:-}" "$(cat "$tools/$1/go.mod" "$tools/$1/go.sum")"; }

bin="$cache/node-bin"
step=0
total_steps=4
# component DIR NAME "FILES" FUNCTION [KEY-EXTRA]: builds tools/DIR with FUNCTION unless cached;
# links FILES into $bin.
component() {
  local dir=$1 name=$2 files=$3 fn=$4 extra=${5:-}
  step=$((step + 1))
  log node "[$step/$total_steps] $name"
  pushd "$tools/$dir" >/dev/null
  cached_build node "$name" "$(key_of "$dir" "$extra")" "$files" "$fn"
  popd >/dev/null
  local out=$built_dir f
  mkdir -p "$bin"
  for f in $files; do ln -sfn "$out/$f" "$bin/$f"; done
}

build_kubelet() {
  local c
  for c in kubelet kube-proxy; do
    go_build node "$1/$c" "k8s.io/kubernetes/cmd/$c" "$(kube_ldflags)"
  done
}

build_containerd() {
  local version pkg=github.com/containerd/containerd/v2
  version=$(go list -m -f '{{.Version}}' "$pkg")
  local ldflags="-s -w -X $pkg/version.Version=$version -X $pkg/version.Package=$pkg \
    -X $pkg/version.Revision=berth-$version"
  local c
  for c in containerd containerd-shim-runc-v2 ctr; do
    # btrfs needs cgo; the docs tag leaves out the man-page generator.
    GOFLAGS="$GOFLAGS -tags=no_btrfs,urfave_cli_no_docs" go_build node "$1/$c" "$pkg/cmd/$c" "$ldflags"
  done
}

build_kube_router() {
  local version pkg=github.com/cloudnativelabs/kube-router/v2
  version=$(go list -m -f '{{.Version}}' "$pkg")
  go_build node "$1/kube-router" "$pkg/cmd/kube-router" \
    "-s -w -X $pkg/pkg/version.Version=$version -X $pkg/pkg/version.BuildDate=berth"
}

build_coredns() {
  local commit
  commit=$(go list -m -f '{{.Version}}' github.com/coredns/coredns)
  go_build node "$1/coredns" . "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$commit"
}

component containerd containerd "containerd containerd-shim-runc-v2 ctr" build_containerd
component kube-router kube-router "kube-router" build_kube_router
component coredns coredns "coredns" build_coredns
component kube kubelet "kubelet kube-proxy" build_kubelet "$KUBE_VERSION"

echo "$bin"
