#!/usr/bin/env bash
# Builds the pinned control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)
# and kwok from their Go modules, into a cache outside the work tree keyed by the pins.
# Progress goes to stderr; the last line of stdout is the directory that holds the binaries.
#   tools/build.sh            build what is missing (a cold build takes about 20 minutes on 2 cores)
#   BERTH_CACHE=/path         where the cache lives (default ~/.cache/berth)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
cache=${BERTH_CACHE:-$HOME/.cache/berth}
goversion=$(go env GOVERSION)
# Bump when the way a component is built changes (flags, files copied), to force a rebuild.
recipe=2

log() { printf '[tools/build] %s\n' "$*" >&2; }

# A component's cache key covers the recipe, the pins, its module files and the Go compiler.
key_of() {
  { echo "$recipe $goversion"; cat "$here/versions.env" "$here/$1/go.mod" "$here/$1/go.sum"; } | sha256sum | cut -c1-16
}

# go_build OUT PKG [LDFLAGS]: go build with a running count of compiled packages against the total.
go_build() {
  local out=$1 pkg=$2 ldflags=${3:--s -w}
  local total
  total=$(go list -deps "$pkg" | wc -l)
  log "  compiling $pkg ($total packages)"
  go build -v -trimpath -ldflags "$ldflags" -o "$out" "$pkg" 2>&1 |
    awk -v total="$total" -v name="${pkg##*/}" '
      /^[a-zA-Z0-9._\/-]+$/ { n++; if (n % 100 == 0) { printf "[tools/build]   %s: %d/%d packages compiled\n", name, n, total > "/dev/stderr"; fflush() } ; next }
      { print > "/dev/stderr" }'
  [ -x "$out" ] || { log "  $pkg did not build"; return 1; }
}

step=0
total_steps=4
# build_component DIR "BIN..." FUNCTION: runs FUNCTION OUTDIR in tools/DIR unless all BINs are cached.
build_component() {
  local dir=$1 bins=$2 fn=$3
  step=$((step + 1))
  local out="$cache/$dir-$(key_of "$dir")"
  local missing=0
  for b in $bins; do [ -e "$out/$b" ] || missing=1; done
  if [ $missing = 0 ]; then
    log "[$step/$total_steps] $dir: cached in $out"
  else
    log "[$step/$total_steps] $dir: building $bins"
    local start=$SECONDS
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    (cd "$here/$dir" && "$fn" "$out.tmp")
    rm -rf "$out" && mv "$out.tmp" "$out"
    # Drop builds of this component for other pins: they are never used again.
    for old in "$cache/$dir"-*; do [ "$old" = "$out" ] || rm -rf "$old"; done
    log "[$step/$total_steps] $dir: built in $((SECONDS - start)) s"
  fi
  mkdir -p "$cache/bin"
  for b in $bins; do ln -sfn "$out/$b" "$cache/bin/$b"; done
}

build_etcd() { go_build "$1/etcd" go.etcd.io/etcd/server/v3; }

build_kwok() {
  go_build "$1/kwok" sigs.k8s.io/kwok/cmd/kwok
  # kwok has no stages built in: take the stock ones from the same module.
  local stage
  stage="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
  mkdir -p "$1/stages"
  cp "$stage/node/fast/node-initialize.yaml" \
     "$stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
     "$stage"/pod/fast/pod-*.yaml "$1/stages/"
  chmod u+w "$1"/stages/*
}

build_kube() {
  local major minor
  major=$(echo "${KUBE_VERSION#v}" | cut -d. -f1)
  minor=$(echo "${KUBE_VERSION#v}" | cut -d. -f2)
  local ldflags="-s -w \
    -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} \
    -X k8s.io/component-base/version.gitMajor=${major} \
    -X k8s.io/component-base/version.gitMinor=${minor} \
    -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION} \
    -X k8s.io/client-go/pkg/version.gitMajor=${major} \
    -X k8s.io/client-go/pkg/version.gitMinor=${minor}"
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    go_build "$1/$c" "k8s.io/kubernetes/cmd/$c" "$ldflags"
  done
}

# Istio's CRDs, from the pinned istio.io/api module: tests install them to exercise Berth's Istio path.
build_istio() {
  mkdir -p "$1/istio-crds"
  cp "$(go list -m -f '{{.Dir}}' istio.io/api)/kubernetes/customresourcedefinitions.gen.yaml" "$1/istio-crds/istio.yaml"
  chmod u+w "$1/istio-crds/istio.yaml"
}

build_component etcd "etcd" build_etcd
build_component kwok "kwok stages" build_kwok
build_component kube "kube-apiserver kube-controller-manager kube-scheduler" build_kube
build_component istio "istio-crds" build_istio

echo "$cache/bin"
