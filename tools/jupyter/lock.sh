#!/usr/bin/env bash
# Resolves tools/jupyter/requirements.in (plus the build's own wheels) for the Jupyter image's
# Python and writes requirements.lock: one line per wheel, `name==version --hash=sha256:<hex>`.
# Run it by hand to move a pin; tools/jupyter/build.sh only ever installs from the lock.
#   tools/jupyter/lock.sh     (needs pip and PyPI; a few tens of seconds)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
source "$here/platform.env"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The image's packages, then what the build uses without installing it: `installer` unpacks the
# wheels, and `tabulate` is the wheel the image carries for an offline `pip install --user`.
for what in image:requirements.in build:build-requirements.in; do
  set -- ${what/:/ }
  log jupyter "resolving $2 for CPython $PYTHON_VERSION on $PLATFORMS"
  python3 -m pip download --quiet --no-cache-dir --only-binary=:all: \
    --python-version "$PYTHON_VERSION" --implementation cp --abi "$ABI" \
    $(for p in $PLATFORMS; do printf -- '--platform %s ' "$p"; done) \
    --index-url https://pypi.org/simple --no-input \
    -r "$here/$2" -d "$work/$1"
done
{
  echo "# Written by tools/jupyter/lock.sh from requirements.in and build-requirements.in: every"
  echo "# wheel for CPython $PYTHON_VERSION ($ABI) on $PLATFORMS, with its SHA-256."
  echo "# Do not edit by hand. Sections: [image] is installed into the image, [build] is used by the"
  echo "# build (installer) or shipped as a file (tabulate)."
  for section in image build; do
    echo "# [$section]"
    for wheel in $(ls "$work/$section" | sort -f); do
      name=$(echo "$wheel" | cut -d- -f1 | tr '_' '-' | tr 'A-Z' 'a-z')
      version=$(echo "$wheel" | cut -d- -f2)
      hash=$(sha256sum "$work/$section/$wheel" | cut -d' ' -f1)
      echo "$name==$version --hash=sha256:$hash"
    done
  done
} > "$here/requirements.lock"
log jupyter "wrote $here/requirements.lock ($(grep -c -- '--hash' "$here/requirements.lock") wheels)"
