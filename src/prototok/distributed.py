"""Scale-out with PyTorch's own runtime: `torchrun --nproc-per-node K -m prototok capacity ...`.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; with WORLD_SIZE > 1 each rank joins
one process group (nccl on CUDA, gloo on CPU) on its own device (cuda:LOCAL_RANK), and the experiments share
their work: the texts still to fit, in the order every rank walks them, go to rank i % world (Run.mine), and
a group sharing m (or e) is split across ranks with its shared gradient all-reduced (fit(process_group=)).

Results: each rank commits to its own SQLite file beside the database, `<db>.rank{r}.db`, read together with
the main database (RankStore), and the ranks swap their new rows whenever an experiment reads results
(Run.rows), so every rank takes the same decisions (where the capacity walk stops). At the end rank 0 merges
the rank files into the main database (ON CONFLICT DO NOTHING) and deletes them; at the start it merges any
left by a crashed run first, so a rerun resumes from every rank's commits, without loss or duplicates.

Waits between ranks (row swaps, barriers) go through a gloo group on CPU, with a long timeout: one rank may
finish its share of a length hours before another, and must not wait inside NCCL (its watchdog kills).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from .store import GEOMETRY_KEY, KEY, Row, Store, merge_into

TIMEOUT = timedelta(hours=float(os.environ.get("PROTOTOK_DIST_TIMEOUT_H", 72)))


@dataclass
class Dist:
    """This process's place among the ranks; Dist() is the single process (world 1, no process group)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    group: Any = None  # the default group (nccl on CUDA, gloo on CPU): what group fits all-reduce over
    cpu_group: Any = None  # gloo: row swaps and barriers

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier(group=self.cpu_group)

    def exchange(self, obj) -> list:
        """Every rank's obj, in rank order (a collective: every rank must call it)."""
        if not self.active:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj, group=self.cpu_group)
        return out

    def close(self) -> None:
        if self.active and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) in a plain process."""
    get = os.environ.get
    return int(get("RANK", 0)), int(get("WORLD_SIZE", 1)), int(get("LOCAL_RANK", 0))


def device_for(requested: str | None, local_rank: int) -> str:
    """cuda:LOCAL_RANK when CUDA is there and no other device was asked for (or plain "cuda"), else cpu."""
    if requested in (None, "cuda"):
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    return requested


def setup(device: str | None = None) -> tuple[Dist, str | None]:
    """Join the process group when launched by torchrun with WORLD_SIZE > 1; returns (Dist, device to load on).
    A plain process (or WORLD_SIZE 1) gets Dist() and its device unchanged: no process group, no rank files."""
    rank, world, local = env()
    if world <= 1:
        return Dist(), device
    dev = device_for(device, local)
    cuda = dev.startswith("cuda")
    if cuda:
        torch.cuda.set_device(dev)
    dist = torch.distributed
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    cpu = dist.new_group(backend="gloo", timeout=TIMEOUT) if cuda else dist.group.WORLD
    out = Dist(rank, world, local, dist.group.WORLD, cpu)
    atexit.register(out.close)  # teardown however the command ends
    return out, dev


def shard(n: int, rank: int, world: int, start: int = 0) -> list[int]:
    """Which of n work items (numbered from `start` in a walk every rank shares) go to this rank: i % world."""
    return [i for i in range(n) if (start + i) % world == rank]


def rank_path(db: str | Path, rank: int) -> Path:
    db = Path(db)
    return db.with_name(f"{db.name}.rank{rank}.db")


def rank_paths(db: str | Path) -> list[Path]:
    """The rank files beside a database (any world size: a rerun may use fewer ranks than the crashed run)."""
    db = Path(db)
    return sorted(p for p in db.parent.glob(f"{db.name}.rank*.db") if p.name[len(db.name) + 5 : -3].isdigit())


def merge_rank_stores(db: str | Path) -> int:
    """Merge every rank file into the main database (rows already there are skipped), then delete them.
    Call from one process, while no rank writes. Returns how many rows were new."""
    new, paths = 0, rank_paths(db)
    if not paths:
        return 0
    with Store(db) as main:
        for path in paths:
            with Store(path) as part:
                new += merge_into(main, part)
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                p.unlink(missing_ok=True)
    return new


def first_per_key(rows: list[dict], key: tuple[str, ...]) -> list[dict]:
    """rows in order, each key kept once (the main database's copy wins over a rank file's)."""
    out, seen = [], set()
    for r in rows:
        k = tuple(r[c] for c in key)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


class RankStore(Store):
    """This rank's results file, read as one with the main database; proto-token files go where the main
    database keeps them (the rank file sits beside it, so a row's relative path holds after the merge)."""

    def __init__(self, main: Store, rank: int):
        super().__init__(rank_path(main.path, rank))
        self.main = main
        self.fresh: list[Row] = []  # committed here since the last swap with the other ranks

    @property
    def proto_dir(self) -> Path:
        return self.main.proto_dir

    def add(self, rows: list[Row]) -> int:
        self.fresh += rows
        return super().add(rows)

    def add_others(self, rows: list[Row]) -> int:
        """Rows another rank committed: kept here too (a later swap does not resend them)."""
        return super().add(rows)

    def rows(self, **where) -> list[dict]:
        return first_per_key(self.main.rows(**where) + super().rows(**where), KEY)

    def count(self) -> int:
        return len(self.rows())

    def geometry(self, **where) -> list[dict]:
        """The main database's geometry rows, then this rank's new keys, as rows() reads `runs`."""
        return first_per_key(self.main.geometry(**where) + super().geometry(**where), GEOMETRY_KEY)
