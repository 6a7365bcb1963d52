#!/usr/bin/env bash
# Resolves tools/pyclients/requirements.in for this machine's python3 and writes requirements.lock:
# one line per wheel, `name==version --hash=sha256:<hex>`. Run it by hand to move a pin;
# tools/pyclients/install.sh only ever installs from the lock.
#   tools/pyclients/lock.sh     (needs pip and PyPI; a few tens of seconds)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
python=${BERTH_PYTHON:-python3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log pyclients "resolving requirements.in for $("$python" --version 2>&1) (wheels only)"
"$python" -m pip download --quiet --no-cache-dir --only-binary=:all: --no-input \
  --index-url https://pypi.org/simple -r "$here/requirements.in" -d "$work"
{
  echo "# Written by tools/pyclients/lock.sh from requirements.in: every wheel for"
  echo "# $("$python" --version 2>&1) on $(uname -m) Linux, with its SHA-256. Do not edit by hand."
  for wheel in $(ls "$work" | sort -f); do
    name=$(echo "$wheel" | cut -d- -f1 | tr '_' '-' | tr 'A-Z' 'a-z')
    version=$(echo "$wheel" | cut -d- -f2)
    echo "$name==$version --hash=sha256:$(sha256sum "$work/$wheel" | cut -d' ' -f1)"
  done
} > "$here/requirements.lock"
log pyclients "wrote $here/requirements.lock ($(grep -c -- '--hash' "$here/requirements.lock") wheels)"
