#!/usr/bin/env bash
# Builds the pinned Garage S3 server (crates.io `garage`) with `cargo install --locked`, into a
# cache outside the work tree keyed by the pin, the recipe and the Rust compiler.
# Progress goes to stderr; the last line of stdout is the directory that holds bin/garage.
#   tools/garage/build.sh     build what is missing (a cold build takes about 15 minutes on 2 cores)
#   BERTH_CACHE=/path         where the cache lives (default ~/.cache/berth)
# Garage is AGPL-3.0: Berth only runs it as an external server for tests and never links it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
GARAGE_VERSION=2.5.0
# Bump when the way Garage is built changes (flags, features), to force a rebuild.
recipe=1
key=$(cache_key "$recipe $GARAGE_VERSION" "$(rustc -V)")

build_garage() {
  log garage "garage $GARAGE_VERSION: cargo install --locked (about 15 minutes cold on 2 cores)"
  # A target directory of its own that survives an interrupted build, so a retry resumes it.
  CARGO_TARGET_DIR="$cache/garage-build-$key" \
    cargo install --locked garage --version "$GARAGE_VERSION" --root "$1" --no-track >&2
  rm -rf "$cache/garage-build-$key"
}

cached_build garage garage "$key" "bin/garage" build_garage
echo "$built_dir/bin"
