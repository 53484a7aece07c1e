"""Capacity, the papers' headline number: the longest prefix a frozen model writes back in one forward pass
from (e, m) at >= 99% token accuracy, on the papers' length grid (powers of sqrt(2)), with its H_LM.

Aggregation as the papers do: per sample, the longest grid length reconstructed by any seed (max over
seeds), then mean (and std) over samples; the mean over (sample, seed) pairs is reported beside it.

The walk is the same for every method (run.method): the cramming baseline's rows have its own layout ("mem")
and are judged on its `judged_on` column (greedy-generation accuracy), since teacher forcing can hide a collapse.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from ..fit import SHARES
from ..layouts import DEFAULT_LAYOUT, get_layout
from ..methods import judged_score
from .runner import THRESHOLD, Experiment, Plan, Run, chunks_of
from .texts import Prefixes

LENGTHS = (4, 5, 8, 11, 16, 22, 32, 45, 64, 90, 128, 181, 256, 362, 512, 724, 1024, 1448)


@dataclass(frozen=True)
class CapacityConfig:
    lengths: tuple[int, ...] = LENGTHS  # the grid, walked upwards
    seeds: tuple[int, ...] = (0,)
    layout: str = DEFAULT_LAYOUT
    share: str = "none"  # "m" (or "e"): all samples of one (length, seed) share that vector
    threshold: float = THRESHOLD  # token accuracy that counts as reconstructed

    def __post_init__(self) -> None:
        if not self.lengths or min(self.lengths) < 1:
            raise ValueError(f"CapacityConfig.lengths must be positive integers, got {self.lengths}")
        if not self.seeds:
            raise ValueError("CapacityConfig.seeds must name at least one seed")
        if self.share not in SHARES:
            raise ValueError(f"CapacityConfig.share must be one of {SHARES}, got '{self.share}'")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"CapacityConfig.threshold must lie in (0, 1], got {self.threshold}")
        get_layout(self.layout)


def layout_of(run: Run, cfg: CapacityConfig) -> str:
    """The layout rows are stored under: the method's own (cramming: "mem"), else the configured one."""
    return run.method.layout_for(cfg.layout)


def lengths_for(run: Run, cfg: CapacityConfig) -> tuple[list[int], list[int]]:
    """(grid lengths whose input fits the model's context, those that do not)."""
    grid = sorted(set(cfg.lengths))
    ok = [n for n in grid if run.method.positions(cfg.layout, n) <= run.lm.max_positions]
    return ok, [n for n in grid if n not in ok]


def sharing(share: str, group: int) -> str:
    return "none" if share == "none" else f"{share}/{group}"


def plan_capacity(run: Run, texts: list[Prefixes], cfg: CapacityConfig) -> Plan:
    lengths, dropped = lengths_for(run, cfg)
    layout = layout_of(run, cfg)
    plan = Plan(
        f"capacity ({run.method.name}): {len(texts)} samples x {len(lengths)} lengths x {len(cfg.seeds)} seeds, "
        f"layout {layout}, share {cfg.share}, recipe {run.recipe_key}"
    )
    for n in lengths:
        have = [t for t in texts if n in t.tokens]
        for seed in cfg.seeds:
            items = [t.item(n, seed, layout, sharing(cfg.share, len(have))) for t in have]
            todo = run.todo(items)
            plan.done += len(items) - len(todo)
            if cfg.share == "none":
                plan.calls += [(layout, n, k, k) for k in chunks_of(len(todo), run.batch_size)]
            elif todo:
                plan.calls.append((layout, n, len(items), len(items)))
    plan.notes.append("an upper bound: the walk up the grid stops at the first length no sample reconstructs")
    if dropped:
        plan.notes.append(f"lengths {dropped} do not fit the model's context ({run.lm.max_positions})")
    return plan


def run_capacity(run: Run, texts: list[Prefixes], cfg: CapacityConfig) -> CapacitySummary:
    """Walk up the grid; stop once a length is reconstructed by no (sample, seed). Stored rows are skipped."""
    lengths, _ = lengths_for(run, cfg)
    layout = layout_of(run, cfg)
    for n in lengths:
        have = [t for t in texts if n in t.tokens]
        if not have:
            break  # no sample is this long; longer lengths have none either
        share = sharing(cfg.share, len(have))
        for seed in cfg.seeds:
            items = [t.item(n, seed, layout, share) for t in have]
            if cfg.share == "none":
                run.fit_texts(items)
            else:
                run.fit_group(items, cfg.share, seed)
        if not any(judged_score(r) >= cfg.threshold for r in run.rows(length=n, layout=layout, sharing=share)):
            break
    rows = [r for r in run.rows(layout=layout) if _kind(r["sharing"]) == cfg.share]
    keep = {t.sample for t in texts}
    return summarize([r for r in rows if r["sample"] in keep and r["seed"] in cfg.seeds], cfg.threshold)


def _kind(sharing: str) -> str:
    return sharing.split("/")[0]


@dataclass
class SampleCapacity:
    sample: int
    doc: str
    offset: int
    capacity: int  # longest grid length reconstructed by any seed; 0 if none
    per_seed: dict[int, int]
    h_lm_bits: float | None  # H_LM of the prefix at `capacity`
    h_lm_max: float | None = None  # the largest H_LM among the prefixes this sample reconstructed (Fig. 3)


@dataclass
class CapacitySummary:
    threshold: float
    samples: list[SampleCapacity] = field(default_factory=list)
    by_length: dict[int, dict] = field(default_factory=dict)  # length -> accuracy stats
    judged: str = "accuracy"  # one-pass token accuracy, or "greedy generation accuracy" (cramming rows)

    @property
    def mean(self) -> float:
        return statistics.fmean(s.capacity for s in self.samples) if self.samples else 0.0

    @property
    def std(self) -> float:
        return statistics.pstdev(s.capacity for s in self.samples) if len(self.samples) > 1 else 0.0

    @property
    def seed_mean(self) -> float:
        """Mean over (sample, seed) pairs: what a single seed would give."""
        caps = [c for s in self.samples for c in s.per_seed.values()]
        return statistics.fmean(caps) if caps else 0.0

    @property
    def h_lm_mean(self) -> float | None:
        hs = [s.h_lm_bits for s in self.samples if s.h_lm_bits is not None and s.capacity]
        return statistics.fmean(hs) if hs else None

    def render(self) -> str:
        t = f"{self.threshold:g}"
        lines = [
            f"{'length':>7} {'acc(max over seeds)':>20} {'acc(mean)':>10} {'teacher-forced':>15} {'solved':>8} "
            f"{'H_LM bits':>10} {'fit s':>7} {'decode tok/s':>13}"
        ]
        for n, st in sorted(self.by_length.items()):
            h = "-" if st["h_lm"] is None else f"{st['h_lm']:.1f}"
            tps = "-" if st["decode_tps"] is None else f"{st['decode_tps']:,.0f}"
            lines.append(
                f"{n:>7} {st['best']:>20.4f} {st['mean']:>10.4f} {st['tf_mean']:>15.4f} {st['passed']:>8} "
                f"{h:>10} {st['fit_s']:>7.2f} {tps:>13}"
            )
        for s in self.samples:
            h = "-" if s.h_lm_bits is None or not s.capacity else f"{s.h_lm_bits:.1f} bits"
            seeds = ", ".join(f"seed {k}: {v}" for k, v in sorted(s.per_seed.items()))
            lines.append(f"sample {s.sample} ({s.doc}@{s.offset}): capacity {s.capacity} tokens, H_LM {h} ({seeds})")
        h = "-" if self.h_lm_mean is None else f"{self.h_lm_mean:.1f} bits"
        if self.judged != "accuracy":
            lines.append(f"acc columns: {self.judged}; teacher-forced: the fitter's own accuracy")
        lines.append(
            f"capacity (longest length at {self.judged} >= {t}; max over seeds, "
            f"mean over {len(self.samples)} samples): "
            f"{self.mean:.1f} +- {self.std:.1f} tokens; one seed: {self.seed_mean:.1f}; H_LM at capacity {h}"
        )
        return "\n".join(lines)


def summarize(rows: list[dict], threshold: float = THRESHOLD) -> CapacitySummary:
    """Rows of one setting (model, source, layout, sharing kind, recipe) -> per-sample and mean capacity.
    Judged on methods.judged_score(): greedy generation for cramming rows."""
    out = CapacitySummary(threshold)
    if any(r.get("gen_accuracy") is not None for r in rows):
        out.judged = "greedy generation accuracy"
    per: dict[int, dict[int, int]] = defaultdict(dict)  # sample -> seed -> capacity
    h_at: dict[tuple[int, int], float | None] = {}
    prov: dict[int, tuple[str, int]] = {}
    acc: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))  # length -> sample -> accs
    h_len: dict[int, list[float]] = defaultdict(list)
    by_n: dict[int, list[dict]] = defaultdict(list)
    h_max: dict[int, float] = {}
    for r in rows:
        s, n = r["sample"], r["length"]
        by_n[n].append(r)
        prov[s] = (r["doc"], r["offset"])
        h_at[(s, n)] = r["h_lm_bits"]
        ok = judged_score(r) >= threshold
        per[s][r["seed"]] = max(per[s].get(r["seed"], 0), n if ok else 0)
        acc[n][s].append(judged_score(r))
        if r["h_lm_bits"] is not None:
            h_len[n].append(r["h_lm_bits"])
            if ok:
                h_max[s] = max(h_max.get(s, 0.0), r["h_lm_bits"])
    for s in sorted(per):
        cap = max(per[s].values())
        out.samples.append(SampleCapacity(s, *prov[s], cap, dict(per[s]), h_at.get((s, cap)), h_max.get(s)))
    for n in sorted(acc):
        best = [max(v) for v in acc[n].values()]
        every = [a for v in acc[n].values() for a in v]
        files = {r["proto_path"]: r for r in by_n[n] if r["decode_seconds"]}  # one decode per file
        secs = sum(r["decode_seconds"] for r in files.values())
        out.by_length[n] = {
            "tf_mean": statistics.fmean(r["accuracy"] for r in by_n[n]),
            "fit_s": statistics.fmean(r["fit_seconds"] for r in by_n[n]),
            "decode_tps": sum(r["decode_tokens"] for r in files.values()) / secs if secs else None,
            "best": statistics.fmean(best),
            "mean": statistics.fmean(every),
            "std": statistics.pstdev(every) if len(every) > 1 else 0.0,
            "passed": sum(b >= threshold for b in best),
            "samples": len(best),
            "h_lm": statistics.fmean(h_len[n]) if h_len[n] else None,
        }
    return out


EXPERIMENT = Experiment(
    "capacity", plan_capacity, run_capacity, lambda summary: summary.render(), lambda cfg: list(cfg.lengths)
)
