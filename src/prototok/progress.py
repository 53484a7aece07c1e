"""Progress on stderr: a tqdm bar on a terminal; elsewhere (nohup, a batch system, a pipe) plain lines.

A redirected run is not silent: one line per finished chunk (texts committed, steps done), and at least one
every PROTOTOK_PROGRESS_SECONDS (default 10) while nothing finishes, so a log shows the run is alive.
Progress is information: the `prototok` logger set above INFO (`prototok -q`) turns it off.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

PROGRESS_SECONDS_ENV = "PROTOTOK_PROGRESS_SECONDS"
DEFAULT_SECONDS = 10.0


def _every() -> float:
    try:
        return float(os.environ.get(PROGRESS_SECONDS_ENV, DEFAULT_SECONDS))
    except ValueError:
        return DEFAULT_SECONDS


def shown() -> bool:
    """Whether progress is shown: not when the `prototok` logger's own level is above INFO (prototok -q sets
    WARNING); unset (a library user's default) or INFO/DEBUG shows it."""
    level = logging.getLogger("prototok").level
    return level == logging.NOTSET or level <= logging.INFO


class ProgressBar:
    """update(n, **postfix): n units done so far (a bar's position), with live numbers beside it. Without a
    terminal a line is printed when n grew (a chunk finished), unless chunk=False (a step within a chunk: then
    only the every-N-seconds line)."""

    def __init__(self, total: int, desc: str, unit: str = "text", *, initial: int = 0, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.printed = initial
        self.postfix: dict = {}
        self.t0 = self.last = time.monotonic()
        self.bar = None
        self.silent = not shown()
        isatty = getattr(self.stream, "isatty", None)
        if not self.silent and isatty is not None and isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True)

    def update(self, n: int, *, chunk: bool = True, **postfix) -> None:
        self.n, self.postfix = n, postfix or self.postfix
        if self.silent:
            return
        if self.bar is not None:
            self.bar.n = n
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.refresh()
            return
        now = time.monotonic()
        if (chunk and n > self.printed) or now - self.last >= _every():
            self._line(now)

    def advance(self, k: int = 1, **postfix) -> None:
        self.update(self.n + k, **(postfix or self.postfix))

    def _line(self, now: float) -> None:
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(
            f"prototok: {self.desc}: {self.n}/{self.total} {self.unit}s{extra}, {now - self.t0:.0f} s",
            file=self.stream,
            flush=True,
        )
        self.printed, self.last = self.n, now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.n > self.printed and not self.silent:
            self._line(time.monotonic())


def fit_progress(total: int, desc: str) -> tuple[Callable, ProgressBar]:
    """A fitter's progress (fit.FitProgress snapshots) as a ProgressBar of `total` texts with live step,
    accuracy and solved count: the one display of `prototok encode` and of encode(progress=True). Returns
    (callback for the fitter, the bar to close)."""
    bar = ProgressBar(total, desc)

    def update(p) -> None:
        walking = {"prefix": f"{p.prefix} tokens"} if p.prefix else {}
        bar.update(p.done, **walking, step=p.step, acc=f"{p.active_accuracy:.3f}", solved=p.solved)

    return update, bar
