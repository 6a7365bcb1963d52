"""Installs wheels into the Jupyter image's root filesystem, as the image's own Python would.

Usage: python3 install_wheels.py ROOTFS WHEEL...   (with the `installer` wheel on PYTHONPATH)

Each wheel goes where Debian's python3.11 looks for locally installed packages: modules under
/usr/local/lib/python3.11/dist-packages, scripts under /usr/local/bin with `#!/usr/bin/python3`,
data files (JupyterLab's static assets, the kernel spec) under /usr/local/share. This is what
`pip install --no-deps` would do with the image's Python, done by the PyPA's reference installer
(https://installer.readthedocs.io) from the build machine's Python, which only unpacks files: no
code from the wheels runs. Bytecode is compiled afterwards by the image's own interpreter.
"""

import os
import sys

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile


def main() -> None:
    rootfs, wheels = sys.argv[1], sys.argv[2:]
    local = os.path.join(rootfs, "usr/local")
    site = os.path.join(local, "lib/python3.11/dist-packages")
    scheme = {
        "purelib": site,
        "platlib": site,
        "headers": os.path.join(local, "include/python3.11"),
        "scripts": os.path.join(local, "bin"),
        "data": local,
    }
    destination = SchemeDictionaryDestination(
        scheme,
        interpreter="/usr/bin/python3",
        script_kind="posix",
        bytecode_optimization_levels=[],
    )
    for wheel in sorted(wheels):
        with WheelFile.open(wheel) as source:
            install(source, destination, additional_metadata={"INSTALLER": b"berth\n"})
        print(f"[tools/jupyter]   installed {os.path.basename(wheel)}", file=sys.stderr)


if __name__ == "__main__":
    main()
