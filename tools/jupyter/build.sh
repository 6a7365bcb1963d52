#!/usr/bin/env bash
# Builds the root filesystem of Berth's Jupyter image, with no container engine and no network but
# Debian's mirror (through the machine's apt) and PyPI, into a cache outside the work tree keyed by
# every pin. `cargo xtask images` packs the directory into the image berth.dev/jupyter.
#
# What goes in:
#   - Debian 12 packages: python3.11 and what it depends on, bash, coreutils and the small tools a
#     terminal expects, tini (PID 1: reaps the kernels' and terminals' orphans). apt resolves their
#     dependencies as for an empty system (nothing installed) and downloads them, verified against
#     the signed archive, into a directory of ours; each is unpacked with `dpkg-deb -x`. Nothing is
#     installed on this machine, and no maintainer script runs: what they would do is done here
#     (the user, /bin/sh, bytecode).
#   - PyPI wheels, exactly as tools/jupyter/requirements.lock pins them (version and SHA-256,
#     `pip download --require-hashes --no-deps`), unpacked by the PyPA `installer` into
#     /usr/local (see install_wheels.py). pip is one of them; Debian's EXTERNALLY-MANAGED marker
#     is removed, so `pip install --user` puts packages into HOME, on the notebook's volume.
#   - deploy/images/jupyter/jupyter_server_config.py (only Berth's proxy gets in) and
#     start-notebook; the user jovyan (65532), HOME /home/jovyan.
#   - the stdlib and packages compiled to bytecode by the image's own python3.11 (run through
#     the image's own loader and libraries), `unchecked-hash`, so it is valid whatever the files'
#     times, and recorded under its path in the image.
# Documentation, manual pages and translations are left out (each package's copyright file stays).
#
# Why not debootstrap: its second stage runs the packages' maintainer scripts in a chroot with
# /proc and /sys mounted, which this machine's rules keep to the real node; its first stage alone
# unpacks the ~90 packages of a minimal system (apt, dpkg, perl) that a notebook does not need.
#
# Progress goes to stderr; the last line of stdout is the directory that holds `rootfs/`,
# `VERSION` (JupyterLab's), `PACKAGES` (the Debian packages and versions) and `WHEELS` (the lock).
#   tools/jupyter/build.sh    build what is missing (cold: a few minutes, mostly downloads)
#   BERTH_CACHE=/path         where the cache lives (default ~/.cache/berth)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/../lib.sh"
source "$here/platform.env"
# Bump when the way the root filesystem is made changes, to force a rebuild.
recipe=3

# The Debian packages asked for; apt adds their dependencies. libstdc++6: pyzmq's wheel links
# against it (manylinux wheels take the C++ runtime from the system), and Jupyter cannot start
# without pyzmq.
debian_packages=(python3.11 python3 bash coreutils findutils grep sed tar gzip less tini libstdc++6
  ncurses-base netbase)
image_files=("$root/deploy/images/jupyter/jupyter_server_config.py"
  "$root/deploy/images/jupyter/start-notebook" "$here/install_wheels.py")

empty_status=$(mktemp)
trap 'rm -f "$empty_status"' EXIT
# apt, as if nothing were installed: it resolves every dependency down to libc. Never locks or
# touches this machine's package state (download only, into our own directory).
apt_options=(-o "Dir::State::status=$empty_status" -o APT::Install-Recommends=false
  -o APT::Install-Suggests=false -o Debug::NoLocking=1 -o APT::Sandbox::User=root -q)

resolve() {
  apt-get "${apt_options[@]}" -qq install --print-uris "${debian_packages[@]}" 2>/dev/null |
    awk '{print $2, $4}' | sort
}
resolved=$(resolve || true)
if [ -z "$resolved" ]; then
  log jupyter "apt cannot resolve ${debian_packages[*]} yet: apt-get update"
  apt-get update -qq >&2
  resolved=$(resolve)
fi
[ -n "$resolved" ] || { log jupyter "apt resolves no packages for ${debian_packages[*]}"; exit 1; }

section() { # section NAME: the lock's lines of one section
  awk -v want="# [$1]" '/^# \[/ {on = ($0 == want); next} on && NF' "$here/requirements.lock"
}

fetch_wheels() { # fetch_wheels SECTION DIR
  local list
  list=$(mktemp)
  section "$1" > "$list"
  python3 -m pip download --quiet --no-cache-dir --no-deps --require-hashes --only-binary=:all: \
    --python-version "$PYTHON_VERSION" --implementation cp --abi "$ABI" \
    $(for p in $PLATFORMS; do printf -- '--platform %s ' "$p"; done) \
    --index-url https://pypi.org/simple --no-input -r "$list" -d "$2" >&2
  rm -f "$list"
}

build_jupyter() {
  local dir=$1 rootfs=$1/rootfs start=$SECONDS
  mkdir -p "$rootfs" "$dir/debs/partial"

  log jupyter "  [1/6] downloading $(echo "$resolved" | wc -l) Debian packages (apt, verified against the archive)"
  apt-get "${apt_options[@]}" -y -o "Dir::Cache::archives=$dir/debs" install --download-only \
    "${debian_packages[@]}" >&2
  log jupyter "  [2/6] unpacking them"
  local deb
  for deb in "$dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$rootfs"
    dpkg-deb --showformat='${Package} ${Version}\n' -W "$deb" >> "$dir/PACKAGES.unsorted"
  done
  sort "$dir/PACKAGES.unsorted" > "$dir/PACKAGES" && rm -f "$dir/PACKAGES.unsorted"
  rm -rf "$dir/debs"
  # What the image does not need: manuals, info pages, translations, lintian overrides, and
  # every file under /usr/share/doc but the packages' copyright notices.
  rm -rf "$rootfs"/usr/share/{man,info,locale,lintian,bug,menu,bash-completion}
  find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  # The image's Python is the notebook's: pip may install into HOME (--user).
  rm -f "$rootfs/usr/lib/python3.11/EXTERNALLY-MANAGED"

  log jupyter "  [3/6] downloading $(section image | wc -l) wheels from PyPI (pinned, hashes checked)"
  fetch_wheels image "$dir/wheels"
  fetch_wheels build "$dir/build-wheels"
  log jupyter "  [4/6] installing them into /usr/local (installer $(ls "$dir"/build-wheels | grep -o '^installer-[^-]*'))"
  PYTHONPATH=$(ls "$dir"/build-wheels/installer-*.whl) python3 "$here/install_wheels.py" "$rootfs" "$dir"/wheels/*.whl
  mkdir -p "$rootfs/usr/local/share/berth/wheels"
  cp "$dir"/build-wheels/tabulate-*.whl "$rootfs/usr/local/share/berth/wheels/"
  # debugpy's wheel is one for every platform: its Windows and macOS binaries, their debug
  # symbols and the C sources of its Linux extensions (about 20 MiB) cannot run here.
  find "$rootfs/usr/local/lib/python3.11/dist-packages/debugpy" -type f \
    \( -name '*.dll' -o -name '*.exe' -o -name '*.pdb' -o -name '*.pyd' -o -name '*.dylib' -o -name '*.c' \) -delete
  rm -rf "$dir/wheels" "$dir/build-wheels"

  log jupyter "  [5/6] the user, the shell, Jupyter's configuration"
  # What base-passwd and dash's maintainer scripts would have made, for the one user we run as.
  # jovyan is the Jupyter images' user; nonroot (the same ID) is what every Berth image names it.
  printf 'root:x:0:0:root:/root:/bin/bash\njovyan:x:65532:65532:jovyan:/home/jovyan:/bin/bash\nnonroot:x:65532:65532:nonroot:/home/jovyan:/bin/bash\n' \
    > "$rootfs/etc/passwd"
  printf 'root:x:0:\nusers:x:100:\njovyan:x:65532:\nnonroot:x:65532:\n' > "$rootfs/etc/group"
  mkdir -p "$rootfs/home/jovyan" "$rootfs/tmp" "$rootfs/etc/jupyter" "$rootfs/root"
  ln -sfn bash "$rootfs/bin/sh"
  ln -sfn python3 "$rootfs/usr/bin/python"
  cp "$root/deploy/images/jupyter/jupyter_server_config.py" "$rootfs/etc/jupyter/"
  install -m 0755 "$root/deploy/images/jupyter/start-notebook" "$rootfs/usr/local/bin/start-notebook"
  cp "$here/requirements.lock" "$dir/WHEELS"

  log jupyter "  [6/6] compiling bytecode with the image's python3.11"
  local python=("$rootfs/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path
    "$rootfs/lib/x86_64-linux-gnu:$rootfs/usr/lib/x86_64-linux-gnu" "$rootfs/usr/bin/python3.11")
  PYTHONHOME="$rootfs/usr" PYTHONDONTWRITEBYTECODE= "${python[@]}" -m compileall -q -j 0 \
    --invalidation-mode unchecked-hash -s "$rootfs" -p / \
    "$rootfs/usr/lib/python3.11" "$rootfs/usr/local/lib/python3.11/dist-packages" >/dev/null
  # The smoke test: the image's interpreter imports the server, the kernel and the terminals.
  local version
  version=$(PYTHONHOME="$rootfs/usr" "${python[@]}" -c \
    'import jupyterlab, jupyter_server, ipykernel, terminado, pip; print(jupyterlab.__version__)')
  echo "$version" > "$dir/VERSION"
  log jupyter "  JupyterLab $version on $(grep '^python3.11 ' "$dir/PACKAGES"), $(du -sm "$rootfs" | cut -f1) MiB unpacked, in $((SECONDS - start)) s"
}

key=$(cache_key "$recipe" "$resolved" "$(cat "$here/requirements.lock" "$here/platform.env")" \
  "$(cat "${image_files[@]}")")
cached_build jupyter jupyter "$key" "rootfs VERSION PACKAGES WHEELS" build_jupyter
echo "$built_dir"
