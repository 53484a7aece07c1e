"""The `prototok` logger on the command line: `prototok: ...` lines on stderr at the level -q / -v choose.

The library logs through logging.getLogger("prototok") and configures nothing (a library user's logging setup
decides); the command configures it for one invocation and puts it back as it was when the command ends.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LOGGER = "prototok"
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}  # -q, neither, -v


class _Stderr(logging.Handler):
    """Writes to the sys.stderr of the moment (click's test runner swaps it per invocation)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging's own convention: report, never raise
            self.handleError(record)


class _Format(logging.Formatter):
    """`prototok: message` for information, `prototok: warning: message` (error: ...) above it."""

    def format(self, record: logging.LogRecord) -> str:
        tag = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        text = f"prototok: {tag}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(verbosity: int) -> Callable[[], None]:
    """The logger at LEVELS[verbosity] with one stderr handler; returns the function that puts it back. Progress
    follows the level (progress.shown): -q shows none."""
    log = logging.getLogger(LOGGER)
    level, handler = log.level, _Stderr()
    handler.setFormatter(_Format())
    log.addHandler(handler)
    log.setLevel(LEVELS[verbosity])

    def restore() -> None:
        log.removeHandler(handler)
        log.setLevel(level)

    return restore


@contextmanager
def holding() -> Iterator[list[logging.LogRecord]]:
    """Records logged inside the block are kept in the list it yields instead of being shown: the command
    release()s them once its work succeeded, so that one that fails prints one line (its error), not the
    warnings that came before it."""
    log = logging.getLogger(LOGGER)
    records: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        records.append(record)
        return False

    log.addFilter(hold)
    try:
        yield records
    finally:
        log.removeFilter(hold)


def release(records: list[logging.LogRecord]) -> None:
    """Show records holding() kept, as they would have been shown when logged."""
    log = logging.getLogger(LOGGER)
    for record in records:
        log.handle(record)
