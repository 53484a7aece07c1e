"""The cramming baseline (arXiv 2502.13063) as an experiment: K [mem] vectors per text, fitted teacher-forced,
decoded by greedy generation (N forwards with a KV cache), stored in the same results store as one-pass rows.

Rows have layout "mem" and a recipe key "cram(num_mem=K,...)" (the CramConfig fields that differ from the
paper's defaults), so they never collide with one-pass rows. `accuracy` is teacher-forced (what the fitter
optimises and stops on), `gen_accuracy` is greedy generation's: the one a reader of the text gets, and the one
capacity is judged on. decode_seconds times a greedy generation of the whole file (Fig. 4's throughput).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

import torch

from ..baselines.cramming import MEM_LAYOUT, CramConfig, cram, decode_mem
from ..errors import PrototokError
from ..protofile import ProtoTokens
from ..store import Row
from . import Item, Run

METHODS = ("onepass", "cram")


def cram_key(cfg: CramConfig) -> str:
    """'cram(num_mem=K)' plus the fields that differ from the paper's defaults, e.g. 'cram(num_mem=1,lr=0.1)'."""
    base = CramConfig()
    diff = [f"{f.name}={getattr(cfg, f.name)}" for f in fields(cfg) if getattr(cfg, f.name) != getattr(base, f.name)]
    return f"cram({','.join([f'num_mem={cfg.num_mem}'] + [x for x in diff if not x.startswith('num_mem=')])})"


@torch.no_grad()
def timed_generate(run: Run, proto: ProtoTokens) -> tuple[list[list[int]], float]:
    """Greedy generation of a whole file, wall-clocked (.tolist() inside syncs the device)."""
    t0 = time.perf_counter()
    out = decode_mem(run.lm, proto, run.batch_size)
    return out, time.perf_counter() - t0


@dataclass
class CramRun(Run):
    """A Run whose texts are crammed into [mem] vectors instead of fitted as (e, m)."""

    cram: CramConfig = field(default_factory=CramConfig)

    @property
    def recipe_key(self) -> str:
        return cram_key(self.cram)

    def fit_texts(self, items: list[Item]) -> None:
        """Chunks of batch_size per seed; text `sample` draws from (seed, sample) so a row depends on its key only."""
        todo = self.mine(items)  # the todo items that fall to this rank under torchrun (all of them otherwise)
        for seed in dict.fromkeys(it.seed for it in todo):
            group = [it for it in todo if it.seed == seed]
            for i in range(0, len(group), self.batch_size):
                chunk = group[i : i + self.batch_size]
                results = cram(
                    self.lm,
                    [it.tokens for it in chunk],
                    self.cram,
                    seed=seed,
                    batch_size=self.batch_size,
                    progress=self.on_step,
                    init_ids=[it.sample for it in chunk],
                )
                self._commit_mem(chunk, results)

    def fit_group(self, items: list[Item], share: str, seed: int) -> None:
        raise PrototokError("cramming has no shared vectors: use --share none with --method cram")

    def _commit_mem(self, items: list[Item], results) -> list[Row]:
        extra = {
            "num_mem": self.cram.num_mem,
            "config": {k: getattr(self.cram, k) for k in self.cram.__dataclass_fields__},
            "gen_accuracy": [r.gen_accuracy for r in results],
        }
        mem = torch.stack([r.mem for r in results])  # (T, K, d)
        proto = self._proto(items, results, e=mem, m=torch.zeros(1, 0), layout=MEM_LAYOUT, extra=extra)
        rel = self._save_file(items, proto)
        generated, seconds = timed_generate(self, proto)
        gen = [r.gen_accuracy for r in results]
        return self._store_rows(
            items, results, proto, rel, generated, seconds, min(self.batch_size, len(items)), gen_accuracy=gen
        )
