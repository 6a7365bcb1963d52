# Shared by the pinned build scripts under tools/: logging, Go builds with a package counter, and a
# cache of finished builds keyed by their pins. Source it; it defines functions only.
#   BERTH_CACHE=/path   where builds are cached (default ~/.cache/berth)

cache=${BERTH_CACHE:-$HOME/.cache/berth}

# log TOOL MESSAGE: progress on stderr, so stdout stays the build's directory.
log() { local tool=$1; shift; printf '[tools/%s] %s\n' "$tool" "$*" >&2; }

# cache_key TEXT...: the first 16 hex of the SHA-256 of the given text (pins, module files, compiler).
cache_key() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }

# go_module_dir MODULE: the directory of MODULE (at the version the current go.mod pins) in the module
# cache, downloading it first. `go list -m -f '{{.Dir}}'` alone prints an empty line for a module
# that nothing has downloaded yet (a fresh machine), so every step that reads a module's files
# goes through here.
go_module_dir() {
  local module=$1 dir
  go mod download "$module" >&2 || { log go "could not download $module"; return 1; }
  dir=$(go list -m -f '{{.Dir}}' "$module")
  [ -n "$dir" ] && [ -d "$dir" ] || { log go "$module has no directory in the module cache after download"; return 1; }
  echo "$dir"
}

# go_build TOOL OUT PKG [LDFLAGS]: go build with a running count of compiled packages of the total.
go_build() {
  local tool=$1 out=$2 pkg=$3 ldflags=${4:--s -w} total
  total=$(go list -deps "$pkg" | wc -l)
  log "$tool" "  compiling $pkg ($total packages)"
  go build -v -trimpath -ldflags "$ldflags" -o "$out" "$pkg" 2>&1 |
    awk -v total="$total" -v name="${pkg##*/}" -v tool="$tool" '
      /^[a-zA-Z0-9._\/-]+$/ { n++; if (n % 100 == 0) { printf "[tools/%s]   %s: %d/%d packages compiled\n", tool, name, n, total > "/dev/stderr"; fflush() } ; next }
      { print > "/dev/stderr" }'
  [ -x "$out" ] || { log "$tool" "  $pkg did not build"; return 1; }
}

# cached_build TOOL NAME KEY "FILES" FUNCTION: unless $cache/NAME-KEY holds every one of FILES,
# runs FUNCTION DIR into a fresh DIR, then moves it in place and removes NAME's builds for other
# keys. Sets `built_dir` to $cache/NAME-KEY.
cached_build() {
  local tool=$1 name=$2 key=$3 files=$4 fn=$5
  built_dir="$cache/$name-$key"
  local missing=0 f
  for f in $files; do [ -e "$built_dir/$f" ] || missing=1; done
  if [ $missing = 0 ]; then
    log "$tool" "$name: cached in $built_dir"
    return 0
  fi
  log "$tool" "$name: building $files"
  local start=$SECONDS
  rm -rf "$built_dir.tmp" && mkdir -p "$built_dir.tmp"
  "$fn" "$built_dir.tmp"
  rm -rf "$built_dir" && mv "$built_dir.tmp" "$built_dir"
  local old
  for old in "$cache/$name"-*; do
    # Only our own builds (<name>-<16 hex>): other things may live under the same cache.
    if [[ "${old##*/}" =~ ^$name-[0-9a-f]{16}$ ]] && [ "$old" != "$built_dir" ]; then rm -rf "$old"; fi
  done
  log "$tool" "$name: built in $((SECONDS - start)) s"
}

# kube_ldflags: the ldflags that make a k8s.io/kubernetes command report KUBE_VERSION (from
# versions.env) instead of v0.0.0-master.
kube_ldflags() {
  local major minor
  major=$(echo "${KUBE_VERSION#v}" | cut -d. -f1)
  minor=$(echo "${KUBE_VERSION#v}" | cut -d. -f2)
  echo "-s -w \
    -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} \
    -X k8s.io/component-base/version.gitMajor=${major} \
    -X k8s.io/component-base/version.gitMinor=${minor} \
    -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION} \
    -X k8s.io/client-go/pkg/version.gitMajor=${major} \
    -X k8s.io/client-go/pkg/version.gitMinor=${minor}"
}
