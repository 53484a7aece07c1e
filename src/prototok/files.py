"""File I/O every module shares: atomic writes (a kill never leaves a half-written file) and text reading
with one error message."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import PrototokError

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


def _check_can_create(path: Path, what: str, folder: Path | None = None) -> None:
    """The nearest existing folder at or above `folder` (default: path's folder) must be a folder we can create
    files in: probed with a temporary file (removed at once), since root passes os.access() on a folder it still
    cannot write (/proc, /sys), and a read-only filesystem is only certain once a create fails."""
    folder = path.parent if folder is None else folder
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise PrototokError(f"{what} {path}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".prototok-probe-", dir=folder)
    except OSError as err:
        raise PrototokError(f"{what} {path}: cannot write in {folder} ({_reason(err)})") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | Path, what: str = "output", *, writable: bool = True) -> Path:
    """Refuse, before any work, an output file path that is something other than a regular file (a folder, a
    FIFO, a device, a symbolic link: the atomic rename would replace it) or, with `writable`, whose folder cannot
    be created or written. Nothing is created."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as err:  # a parent that is a file (ENOTDIR), no permission to look
        raise PrototokError(f"{what} {path}: {_reason(err)}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise PrototokError(
            f"{what} {path} exists and is {_kind(st.st_mode)}, not a regular file; refusing to replace it"
        )
    if writable:
        _check_can_create(path, what)
    return path


def check_output_dir(path: str | Path, what: str = "output folder", *, writable: bool = True) -> Path:
    """Refuse an output folder path that exists and is not a folder (a symbolic link to a folder is a folder
    here: files are written inside it, the link itself is never replaced), or, with `writable`, one that cannot
    be created or written. Nothing is created."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise PrototokError(f"{what} {path} is a dangling symbolic link") from None
        st = None
    except OSError as err:
        raise PrototokError(f"{what} {path}: {_reason(err)}") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise PrototokError(f"{what} {path} exists and is {_kind(st.st_mode)}, not a folder")
    if writable:
        _check_can_create(path, what, folder=path)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """The permission bits of the file about to be replaced, or those of a new file (0666 less the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """write(tmp) fills a temporary file in the target's folder, which is then renamed over the target.

    Same folder: the rename is atomic (one filesystem). The temporary file is removed on any failure. A file
    that replaces another keeps that file's mode (a 0600 file stays private, as an in-place write would keep it);
    a new file gets the mode a plain open() would give (0666 less the umask; mkstemp alone gives 0600). A target
    that is not a regular file (folder, FIFO, device, symbolic link) is never replaced.
    """
    path = Path(path)
    check_output_file(path, writable=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise PrototokError(f"cannot write {path}: {_reason(err)}") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _mode_for(path))  # after write: a writer may recreate the file (safetensors does, 0600)
        check_output_file(path, writable=False)  # made something else while we wrote: leave it alone
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json_lines(path: str | Path, rows: Iterable[dict]) -> Path:
    """Rows as JSON lines (one object a line), written atomically: a measurement that rewrites its file after
    each row leaves every row measured so far, even when it is killed."""
    return atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive lock on `path` (created if missing and left in place: removing a lock file races) for the
    block: processes doing one-time work in a shared folder (a model converted into the cache) take turns, and
    the one that waited finds the work done. Without flock (Windows) the block runs unlocked; callers stay
    correct without it, checking again inside and never renaming over finished work."""
    try:
        import fcntl
    except ImportError:  # no POSIX locks on this platform
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # blocks while another process holds it
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_text(path: str | Path) -> str:
    """A UTF-8 text file, or a PrototokError naming the file and the reason."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PrototokError(f"cannot read {path}: {err}") from None
