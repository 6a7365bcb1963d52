#!/usr/bin/env bash
# Installs the pinned third-party Open Inference Protocol clients (NVIDIA's tritonclient, HTTP and
# gRPC) into a virtualenv in Berth's cache, keyed by the lock and the Python version. Progress goes
# to stderr; the last line of stdout is the directory, whose bin/python imports tritonclient.
#   tools/pyclients/install.sh      install what is missing (`cargo xtask test` runs it)
#   BERTH_CACHE=/path               where the cache lives (default ~/.cache/berth)
#   BERTH_PYTHON=python3.11         the interpreter the venv is made from (default python3)
#
# Every package, direct or transitive, is pinned with its SHA-256 in requirements.lock (written by
# lock.sh from requirements.in); pip installs wheels only, with --require-hashes and --no-deps, so
# nothing outside the lock can come in.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
python=${BERTH_PYTHON:-python3}
recipe=1

install_all() {
  local dir=$1
  log pyclients "  making a venv with $("$python" --version 2>&1)"
  "$python" -m venv "$dir"
  log pyclients "  installing $(grep -c -- '--hash' "$here/requirements.lock") pinned wheels from requirements.lock"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-hashes --only-binary=:all: --no-deps -r "$here/requirements.lock" >&2
  "$dir/bin/python" -m pip check >&2
  "$dir/bin/python" -c 'import tritonclient.http, tritonclient.grpc, numpy' >&2
}

cached_build pyclients pyclients \
  "$(cache_key "$recipe $("$python" --version 2>&1) $(uname -m)" "$(cat "$here/requirements.lock")")" \
  "bin/python" install_all
echo "$built_dir"
