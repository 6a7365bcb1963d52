#!/usr/bin/env bash
# Builds the pinned MinIO server from its Go module (tools/minio/go.mod), into a cache outside the
# work tree keyed by the pin, the module files and the Go compiler.
# Progress goes to stderr; the last line of stdout is the directory that holds `minio`.
#   tools/minio/build.sh      build what is missing (a cold build takes a few minutes on 2 cores)
#   BERTH_CACHE=/path         where the cache lives (default ~/.cache/berth)
# MinIO is AGPL-3.0: Berth only runs it as an external server for tests and never links it.
#
# The pin: RELEASE.* tags are not semantic versions, and the module proxy here answers 403 to a
# query by tag or by commit, so go.mod pins the pseudo-version of the repository's final commit
# (after RELEASE.2025-10-15T17-29-55Z, the last release; the repository is archived since).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Bump when the way MinIO is built changes (flags, files copied), to force a rebuild.
recipe=1

build_minio() {
  local version commit
  version=$(go list -m -f '{{.Version}}' github.com/minio/minio)
  commit=${version##*-}
  go_build minio "$1/minio" github.com/minio/minio "-s -w \
      -X github.com/minio/minio/cmd.Version=$version \
      -X github.com/minio/minio/cmd.ReleaseTag=DEVELOPMENT.berth-$commit \
      -X github.com/minio/minio/cmd.CommitID=$commit \
      -X github.com/minio/minio/cmd.ShortCommitID=$commit"
}

cd "$here"
cached_build minio minio "$(cache_key "$recipe $(go env GOVERSION)" "$(cat go.mod go.sum)")" "minio" build_minio
echo "$built_dir"
