"""File I/O every module shares: atomic writes (a kill never leaves a half-written file) and text reading
with one error message."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import PrototokError


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """write(tmp) fills a temporary file in the target's folder, which is then renamed over the target.

    Same folder: the rename is atomic (one filesystem). The temporary file is removed on any failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_text(path: str | Path) -> str:
    """A UTF-8 text file, or a PrototokError naming the file and the reason."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PrototokError(f"cannot read {path}: {err}") from None
