#!/usr/bin/env bash
# Builds the pinned Garage S3 server (crates.io `garage`) with `cargo install --locked`, into a
# cache outside the work tree keyed by the pin, the recipe and the Rust compiler.
# Progress goes to stderr; the last line of stdout is the directory that holds bin/garage.
#   tools/garage/build.sh     build what is missing (a cold build takes about 13 CPU-minutes)
#   BERTH_CACHE=/path         where the cache lives (default ~/.cache/berth)
# Garage is AGPL-3.0: Berth only runs it as an external server for tests and never links it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
GARAGE_VERSION=2.5.0
# Only what the tests and the local platform use: the S3 and admin APIs on the sqlite metadata
# engine (crates/services writes `db_engine = "sqlite"`). The default features add LMDB, K2V and
# the OpenTelemetry/Prometheus metrics stack, none of which Berth starts.
GARAGE_FEATURES=bundled-libs,sqlite
# opt-level 1 (the tests and the local platform move kilobytes) and no debug info: 8.3 CPU-minutes
# cold (443 s user + 51 s system). opt-level 2 took 13 CPU-minutes (730 s user + 51 s system), and
# the default build 33 min wall with four other builds on the same 2 cores.
GARAGE_OPT_LEVEL=1
# Bump when the way Garage is built changes (flags, features), to force a rebuild.
recipe=2
key=$(cache_key "$recipe $GARAGE_VERSION $GARAGE_FEATURES $GARAGE_OPT_LEVEL" "$(rustc -V)")

build_garage() {
  log garage "garage $GARAGE_VERSION (features $GARAGE_FEATURES, opt-level $GARAGE_OPT_LEVEL): cargo install --locked"
  # A target directory of its own that survives an interrupted build, so a retry resumes it.
  CARGO_TARGET_DIR="$cache/garage-build-$key" \
  CARGO_PROFILE_RELEASE_OPT_LEVEL=$GARAGE_OPT_LEVEL CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo install --locked garage --version "$GARAGE_VERSION" --root "$1" --no-track \
      --no-default-features --features "$GARAGE_FEATURES" >&2
  rm -rf "$cache/garage-build-$key"
}

cached_build garage garage "$key" "bin/garage" build_garage
echo "$built_dir/bin"
