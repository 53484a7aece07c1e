"""A Debian package's files without root: the austen corpus and the random-word list come from .deb packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import PrototokError


def debian_package(package: str, folder: Path) -> Path:
    """Download (`apt-get download`, no root needed) and unpack (`dpkg-deb -x`) a .deb once; returns the tree.

    A .deb placed in `folder` beforehand (e.g. by the Makefile) is used as is."""
    tree = folder / "root"
    if tree.is_dir():
        return tree
    folder.mkdir(parents=True, exist_ok=True)
    debs = sorted(folder.glob(f"{package}_*.deb"))
    try:
        if not debs:
            subprocess.run(["apt-get", "download", package], cwd=folder, check=True, capture_output=True, text=True)
            debs = sorted(folder.glob(f"{package}_*.deb"))
        tmp = Path(tempfile.mkdtemp(prefix="root.tmp-", dir=folder))
        try:
            subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp)], check=True, capture_output=True, text=True)
            os.replace(tmp, tree)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, IndexError, subprocess.CalledProcessError) as err:
        detail = (getattr(err, "stderr", "") or str(err) or type(err).__name__).strip().splitlines()[-1]
        raise PrototokError(
            f"cannot fetch Debian package {package} (needs apt-get and dpkg-deb, or put its .deb in {folder}): {detail}"
        ) from None
    return tree
