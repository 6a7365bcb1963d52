#!/usr/bin/env bash
# Builds the pinned control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)
# and kwok from their Go modules, and takes Istio's CRDs from theirs, into a cache outside the work
# tree keyed by the pins. Progress goes to stderr; the last line of stdout is the directory that
# holds the binaries.
#   tools/build.sh            build what is missing (a cold build takes about 10 minutes on 2 cores)
#   BERTH_CACHE=/path         where the cache lives (default ~/.cache/berth)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
source "$here/lib.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
goversion=$(go env GOVERSION)
# Bump when the way a component is built changes (flags, files copied), to force a rebuild.
recipe=2

# A component's key covers the recipe, the pins, its module files and the Go compiler.
key_of() { cache_key "$recipe $goversion" "$(cat "$here/versions.env" "$here/$1/go.mod" "$here/$1/go.sum")"; }

step=0
total_steps=5
# component DIR "FILES" FUNCTION: builds tools/DIR with FUNCTION unless cached; links FILES into bin/.
component() {
  local dir=$1 files=$2 fn=$3
  step=$((step + 1))
  log build "[$step/$total_steps] $dir"
  pushd "$here/$dir" >/dev/null
  cached_build build "$dir" "$(key_of "$dir")" "$files" "$fn"
  popd >/dev/null
  local out=$built_dir
  mkdir -p "$cache/bin"
  local f
  for f in $files; do ln -sfn "$out/$f" "$cache/bin/$f"; done
}

build_etcd() { go_build build "$1/etcd" go.etcd.io/etcd/server/v3; }

build_kwok() {
  go_build build "$1/kwok" sigs.k8s.io/kwok/cmd/kwok
  # kwok has no stages built in: take the stock ones from the same module.
  local stage
  stage="$(go_module_dir sigs.k8s.io/kwok)/kustomize/stage"
  mkdir -p "$1/stages"
  cp "$stage/node/fast/node-initialize.yaml" \
     "$stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
     "$stage"/pod/fast/pod-*.yaml "$1/stages/"
  chmod u+w "$1"/stages/*
}

build_kube() {
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    go_build build "$1/$c" "k8s.io/kubernetes/cmd/$c" "$(kube_ldflags)"
  done
}

# Istio's CRDs, from the pinned istio.io/api module: tests install them to exercise Berth's Istio path.
build_istio() {
  mkdir -p "$1/istio-crds"
  local api
  api=$(go_module_dir istio.io/api)
  cp "$api/kubernetes/customresourcedefinitions.gen.yaml" "$1/istio-crds/istio.yaml"
  chmod u+w "$1/istio-crds/istio.yaml"
}

# The admin-tier network policy API's CRDs, from the pinned sigs.k8s.io/network-policy-api module:
# ClusterNetworkPolicy (current) in current/, and AdminNetworkPolicy v1alpha1 from the legacy
# release tools/network-policy-api/go.mod names (pinned by its go.sum lines) in legacy/. Tests
# install one set or the other to exercise Berth's admin-tier policy.
build_network_policy_api() {
  local current legacy
  current=$(go_module_dir sigs.k8s.io/network-policy-api)
  legacy=$(sed -n 's#^// legacy \(sigs.k8s.io/network-policy-api\) \(v[0-9.]*\)$#\1@\2#p' go.mod)
  [ -n "$legacy" ] || { log build "  tools/network-policy-api/go.mod names no legacy version"; return 1; }
  legacy=$(go_module_dir "$legacy")
  mkdir -p "$1/network-policy-api-crds/current" "$1/network-policy-api-crds/legacy"
  cp "$current"/config/crd/standard/policy.networking.k8s.io_*.yaml "$1/network-policy-api-crds/current/"
  cp "$legacy"/config/crd/policy.networking.k8s.io_adminnetworkpolicies.yaml "$1/network-policy-api-crds/legacy/"
  chmod -R u+w "$1/network-policy-api-crds"
}

component etcd "etcd" build_etcd
component kwok "kwok stages" build_kwok
component kube "kube-apiserver kube-controller-manager kube-scheduler" build_kube
component istio "istio-crds" build_istio
component network-policy-api "network-policy-api-crds" build_network_policy_api

echo "$cache/bin"
