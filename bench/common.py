"""What the benchmarks share: their common options, the texts they fit, timing, the JSON lines they write, and
the ratio of a figure against a baseline measured in the same run.

A benchmark's output (stdout, and --out when given) is JSON lines: first one `{"machine": ..., "command": ...}`
line saying what it ran on, then one line per measurement, each speed or cost figure beside its ratio against
the baseline the same run measured (a ratio across runs or machines would compare machines, not methods).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import transformers

from prototok.errors import PrototokError
from prototok.experiments.texts import exact_length_texts
from prototok.files import write_json_lines
from prototok.version import __version__

# Texts of the fits when no --data is given (fit_speed's default): enough for 4 texts of up to 16 tokens.
SENTENCES = [
    "Paris is the capital and most populous city of France, on the river Seine.",
    "The quick brown fox jumps over the lazy dog near the old river bank today.",
    "Photosynthesis converts light energy into chemical energy stored in sugar molecules.",
    "It is a truth universally acknowledged that a single man in possession of a good fortune must be in want.",
    "The mitochondrion is an organelle found in the cells of most eukaryotic organisms.",
    "Mount Everest is the highest mountain above sea level, in the Himalayas of Asia.",
    "Jazz originated in the African-American communities of New Orleans in the late nineteenth century.",
    "A prime number is a natural number greater than one that has no positive divisors other than one and itself.",
]


def model_options(ap: argparse.ArgumentParser) -> None:
    """--model and --device, as every benchmark that loads a model takes them."""
    ap.add_argument("--model", default="smollm2-135m", help="built-in name, .gguf file or HF folder")
    ap.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")


def out_option(ap: argparse.ArgumentParser, when: str = "after each measurement") -> None:
    """--out: where the JSON lines also go (rewritten atomically `when`, so a killed run keeps what it measured)."""
    ap.add_argument("--out", default=None, help=f"also write the JSON lines here (atomically, {when})")


def texts_for(lm, n_tokens: int, count: int, data: str | None, data_seed: int = 0) -> list[list[int]]:
    """count texts of exactly n_tokens: --data's samples when given, then the built-in sentences."""
    try:
        return exact_length_texts(lm, n_tokens, count, data, data_seed=data_seed, extra=SENTENCES)
    except PrototokError as err:
        sys.exit(f"{err}; pass --data")


def p90(values: list[int]) -> int | None:
    """Nearest-rank 90th percentile (of 3 values, the largest)."""
    return sorted(values)[math.ceil(0.9 * len(values)) - 1] if values else None


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of fn() after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()  # kernels are async: wait before reading the clock
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device | str | None = None) -> dict:
    """What a measurement ran on: versions, CPU, threads, and the GPU when the device is one."""
    info = {
        "prototok": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def ratio(new: float | None, base: float | None, digits: int = 2) -> float | None:
    """new / base, rounded; None when either is missing or base is 0 (no ratio to state)."""
    if new is None or not base:
        return None
    return round(new / base, digits)


def ratios(row: dict, base: dict, fields: list[str], digits: int = 2) -> dict:
    """`<field>_ratio` = row[field] / base[field] for each field (see ratio)."""
    return {f"{f}_ratio": ratio(row.get(f), base.get(f), digits) for f in fields}


@dataclass
class RunLog:
    """One run's JSON lines: the machine line first, then each row as it is measured, printed and (with out)
    the whole file rewritten."""

    out: str | None
    device: torch.device | str | None = None
    rows: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        command = "python " + shlex.join(sys.argv)
        self.add({"machine": machine_info(self.device), "command": command}, write=False)

    def add(self, row: dict, write: bool = True) -> dict:
        print(json.dumps(row), flush=True)
        self.rows.append(row)
        if write and self.out:
            self.flush()
        return row

    def flush(self) -> None:
        if self.out:
            write_json_lines(self.out, self.rows)
