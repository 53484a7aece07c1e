"""Capacity, the papers' headline number: the longest prefix a frozen model writes back in one forward pass
from (e, m) at >= 99% token accuracy, on the papers' length grid (powers of sqrt(2)), with its H_LM.

"Capacity" is the statistic the papers report, chosen by the rows' method (methods.*.capacity_statistic):
- one-pass ("max"): per sample, the longest grid length reconstructed by any seed (max over seeds); then the
  maximum over samples (arXiv 2505.21189 reports maximum values);
- the cramming baseline ("mean-accuracy"): the largest length whose mean over texts of the best accuracy (max
  over seeds) reaches the threshold, as hidden_capacity summarizes its runs.
Beside it: mean +- std of the per-sample capacities, the per-sample values, and the mean over (sample, seed).
Both are grid values. The count statistic, C_tokens (`capacity_tokens`), is what arXiv 2505.21189's Table 3
prints (Eq. 2): per sample the most tokens of a text reconstructed, then the maximum over samples. It differs
from the grid value where a text is shorter than its grid length: a sample shorter than a length is fitted
whole once (texts.prefixes(whole=True), as hidden_capacity's truncation gives it; those rows count towards
C_tokens only) and a drawn-length text (random-glove-drawn) counts its drawn tokens. H_LM at capacity is that
text's (mean +- std over samples).
H_LM is stored in bits (Row.h_lm_bits) and shown in nats, the paper's unit (Table 3): nats = bits * ln 2.

The walk is the same for every method (run.method): a method's rows carry its own layout and are judged on its
`judged_on` column; the baseline's grid goes on past 1448 (method.longer_lengths: 1568, 2048).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import torch

from ..errors import PrototokError
from ..layouts import DEFAULT_LAYOUT, Layout, get_layout
from ..methods import METHODS, for_layout, judged_score
from ..protofile import ProtoTokens
from ..recipes import SHARES
from ..walk import GRID
from .runner import THRESHOLD, Experiment, Plan, Run, chunks_of
from .texts import Item, Prefixes, fitted_tokens, whole_short

LENGTHS = GRID  # the papers' grid (factor sqrt 2), shared with encode's prefix walk
NATS_PER_BIT = math.log(2)


def nats(bits: float | None) -> float | None:
    """H_LM as stored (bits, Row.h_lm_bits) in the paper's unit, nats."""
    return None if bits is None else bits * NATS_PER_BIT


def grid_lengths(lengths, longer: tuple[int, ...]) -> list[int]:
    """The grid, continued by `longer` when it reaches the default grid's end (1448)."""
    extra = set(longer) if max(LENGTHS) in set(lengths) else set()
    return sorted(set(lengths) | extra)


def prefix_lengths(cfg: CapacityConfig) -> list[int]:
    """Every length any method's walk may need cut from the samples (the baseline's longer grid included)."""
    return grid_lengths(cfg.lengths, tuple(n for cls in METHODS.values() for n in cls.longer_lengths))


@dataclass(frozen=True)
class CapacityConfig:
    lengths: tuple[int, ...] = LENGTHS  # the grid, walked upwards
    seeds: tuple[int, ...] = (0,)
    layout: str = DEFAULT_LAYOUT  # by name (a method's rows carry it: Method.layout_for)
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
        _ = self.lay  # resolved now, once: an unknown name is a ValueError naming the legal layouts

    @cached_property
    def lay(self) -> Layout:
        """The layout itself (`layout` is its name, as stored), resolved once."""
        return get_layout(self.layout)


def layout_of(run: Run, cfg: CapacityConfig) -> str:
    """The layout rows are stored under: the method's own (cramming: "mem"), else the configured one."""
    return run.method.layout_for(cfg.lay)


def lengths_for(run: Run, cfg: CapacityConfig) -> tuple[list[int], list[int]]:
    """(grid lengths whose input fits the model's context, those that do not)."""
    grid = grid_lengths(cfg.lengths, run.method.longer_lengths)
    ok = [n for n in grid if run.method.positions(cfg.lay, n) <= run.lm.max_positions]
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
                plan.calls += [(cfg.lay, n, k, k) for k in chunks_of(len(todo), run.batch_size)]
            elif todo:
                plan.calls.append((cfg.lay, n, len(items), len(items)))
    plan.notes.append("an upper bound: the walk up the grid stops at the first length no sample reconstructs")
    short = [n for n in lengths if any(n not in t.tokens for t in texts)]
    if short:
        plan.notes.append(
            f"lengths {short}: some samples are shorter; each is fitted whole once, at the first length above its "
            "token count (C_tokens counts it; the grid capacity does not)"
        )
    if dropped:
        plan.notes.append(f"lengths {dropped} do not fit the model's context ({run.lm.max_positions})")
    return plan


def run_capacity(run: Run, texts: list[Prefixes], cfg: CapacityConfig) -> CapacitySummary:
    """Walk up the grid; stop once a length is reconstructed by no (sample, seed). Stored rows are skipped."""
    lengths, _ = lengths_for(run, cfg)
    layout = layout_of(run, cfg)
    if run.method.warm == "prefix" and any(t.drawn_bits is not None for t in texts):
        raise PrototokError("a drawing source (random-glove-drawn) has no prefixes to warm-start from: use --warm cold")
    for n in lengths:
        have = [t for t in texts if n in t.tokens]
        if not have:
            break  # no sample is this long; longer lengths have none either
        share = sharing(cfg.share, len(have))
        for seed in cfg.seeds:
            items = [t.item(n, seed, layout, share) for t in have]
            warm = previous_solution(run) if run.method.warm == "prefix" else None
            if cfg.share == "none":
                run.fit_texts(items, cfg.lay, warm)
            else:
                run.fit_group(items, cfg.lay, cfg.share, seed, warm)
        if not any(judged_score(r) >= cfg.threshold for r in run.rows(length=n, layout=layout, sharing=share)):
            break
    rows = [r for r in run.rows(layout=layout) if _kind(r["sharing"]) == cfg.share]
    keep = {t.sample for t in texts}
    return summarize([r for r in rows if r["sample"] in keep and r["seed"] in cfg.seeds], cfg.threshold)


def previous_solution(run: Run) -> Callable[[Item], tuple[torch.Tensor, torch.Tensor] | None]:
    """item -> its own (e, m) at the longest shorter length stored for it (same sample, seed, layout, sharing,
    method), or None (it draws). Reads this process's store only: under torchrun the ranks have swapped their
    rows when the walk finished the previous length (run.rows), so no collective runs inside a fit."""

    files: dict[str, ProtoTokens] = {}

    def warm(it: Item) -> tuple[torch.Tensor, torch.Tensor] | None:
        rows = run.store.rows(
            experiment=run.experiment, model=run.model, source=run.source, recipe=run.recipe_key,
            sample=it.sample, seed=it.seed, layout=it.layout, sharing=it.sharing,
        )  # fmt: skip
        shorter = [r for r in rows if r["length"] < it.length]
        if not shorter:
            return None
        return run.store.solution(max(shorter, key=lambda r: r["length"]), files)  # a chunk's file is read once

    return warm


def _kind(sharing: str) -> str:
    return sharing.split("/")[0]


@dataclass
class SampleCapacity:
    sample: int
    doc: str
    offset: int
    capacity: int  # longest grid length reconstructed by any seed; 0 if none
    per_seed: dict[int, int]
    h_lm_bits: float | None  # H_LM of the text at `tokens` (else at `capacity`), in bits as stored (h_lm_nats)
    h_lm_max: float | None = None  # the largest H_LM (bits) among the prefixes this sample reconstructed (Fig. 3)
    tokens: int | None = None  # C_tokens: the most tokens of a text it reconstructed; None: a count is unknown

    @property
    def h_lm_nats(self) -> float | None:
        return nats(self.h_lm_bits)


@dataclass
class CapacitySummary:
    threshold: float
    samples: list[SampleCapacity] = field(default_factory=list)
    by_length: dict[int, dict] = field(default_factory=dict)  # length -> accuracy stats
    judged: str = "accuracy"  # one-pass token accuracy, "teacher-forced accuracy" or "greedy generation accuracy"
    statistic: str = "max"  # the rows' method's capacity_statistic
    contexts: set[str] = field(default_factory=set)  # H_LM conventions of the rows ("bos", "none")
    counted: bool = True  # every row recorded its fitted token count (rows stored before it did not)
    lengths: tuple[int, ...] = ()  # the grid lengths the rows were fitted at

    @property
    def capacity(self) -> int:
        """The papers' statistic: max over samples of the per-sample capacity ("max"), or the largest length
        whose mean best accuracy over texts reaches the threshold ("mean-accuracy", the cramming baseline's)."""
        if self.statistic == "mean-accuracy":
            return max((n for n, st in self.by_length.items() if st["best"] >= self.threshold), default=0)
        return max((s.capacity for s in self.samples), default=0)

    @property
    def capacity_tokens(self) -> int | None:
        """C_tokens, the count statistic (module docstring): max over samples of the most tokens reconstructed;
        None when some sample's count is unknown (a drawing source's rows stored before counts were kept)."""
        counts = [s.tokens for s in self.samples]
        return None if not counts or None in counts else max(counts)

    @property
    def statistic_text(self) -> str:
        if self.statistic == "mean-accuracy":
            return "largest length whose mean best accuracy over texts reaches it, hidden_capacity's statistic"
        return f"max over seeds, then max over {len(self.samples)} samples, the paper's statistic"

    @property
    def per_sample(self) -> list[int]:
        return [s.capacity for s in self.samples]

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

    def _h_at_capacity(self) -> list[float]:
        return [s.h_lm_bits for s in self.samples if s.h_lm_bits is not None and (s.tokens or s.capacity)]

    @property
    def h_lm_mean(self) -> float | None:
        """Mean over samples of H_LM at each sample's capacity (the text of C_tokens), in nats."""
        hs = self._h_at_capacity()
        return nats(statistics.fmean(hs)) if hs else None

    @property
    def h_lm_std(self) -> float | None:
        """Std over samples of H_LM at each sample's capacity, in nats (the paper prints mean +- std)."""
        hs = self._h_at_capacity()
        return nats(statistics.pstdev(hs)) if len(hs) > 1 else (0.0 if hs else None)

    @property
    def h_lm_top(self) -> float | None:
        """The largest H_LM (nats) any sample reconstructed: the maximum beside the maximum capacity."""
        hs = [s.h_lm_max for s in self.samples if s.h_lm_max is not None]
        return nats(max(hs)) if hs else None

    def render(self) -> str:
        t = f"{self.threshold:g}"
        lines = [
            f"{'length':>7} {'acc(max over seeds)':>20} {'acc(mean)':>10} {'teacher-forced':>15} {'solved':>8} "
            f"{'H_LM nats':>10} {'fit s':>7} {'decode tok/s':>13}"
        ]
        for n, st in sorted(self.by_length.items()):
            h = "-" if st["h_lm"] is None else f"{st['h_lm']:.1f}"
            tps = "-" if st["decode_tps"] is None else f"{st['decode_tps']:,.0f}"
            lines.append(
                f"{n:>7} {st['best']:>20.4f} {st['mean']:>10.4f} {st['tf_mean']:>15.4f} {st['passed']:>8} "
                f"{h:>10} {st['fit_s']:>7.2f} {tps:>13}"
            )
        for s in self.samples:
            h = "-" if s.h_lm_bits is None or not s.capacity else f"{s.h_lm_nats:.1f} nats"
            seeds = ", ".join(f"seed {k}: {v}" for k, v in sorted(s.per_seed.items()))
            lines.append(f"sample {s.sample} ({s.doc}@{s.offset}): capacity {s.capacity} tokens, H_LM {h} ({seeds})")
        h = "-" if self.h_lm_mean is None else f"{self.h_lm_mean:.1f} +- {self.h_lm_std:.1f} nats"
        top = "-" if self.h_lm_top is None else f"{self.h_lm_top:.1f} nats"
        if self.judged != "accuracy":
            lines.append(f"acc columns: {self.judged}; teacher-forced: the fitter's own accuracy")
        if len(self.contexts) > 1:
            lines.append(f"note: these rows mix H_LM conventions {sorted(self.contexts)} (rows stored before a change)")
        lines.append(
            f"capacity (longest length at {self.judged} >= {t}; {self.statistic_text}): {self.capacity} tokens; "
            f"C_tokens (count: most tokens of a text reconstructed, max over samples): {fmt_count(self)}; "
            f"per sample {self.per_sample}: mean {self.mean:.1f} +- {self.std:.1f}; one seed: {self.seed_mean:.1f}; "
            f"H_LM at capacity (mean over samples) {h}, largest reconstructed {top}"
        )
        return "\n".join(lines)


def fmt_count(summary: CapacitySummary) -> str:
    """C_tokens as rendered: "-" when a count is unknown."""
    return "-" if summary.capacity_tokens is None else str(summary.capacity_tokens)


def summarize(rows: list[dict], threshold: float = THRESHOLD) -> CapacitySummary:
    """Rows of one setting (model, source, layout, sharing kind, recipe) -> per-sample and mean capacity.
    Judged on methods.judged_score(): greedy generation for cramming rows."""
    out = CapacitySummary(threshold)
    if rows:
        method = for_layout(rows[0]["layout"])
        out.statistic = method.capacity_statistic
        if method.judged_on == "gen_accuracy":
            out.judged = "greedy generation accuracy"
        elif method.autoregressive:
            out.judged = "teacher-forced accuracy"
    out.contexts = {r["h_lm_context"] for r in rows if r.get("h_lm_context")}
    out.counted = all(r.get("tokens") is not None for r in rows)
    out.lengths = tuple(sorted({r["length"] for r in rows}))
    per: dict[int, dict[int, int]] = defaultdict(dict)  # sample -> seed -> capacity
    h_at: dict[tuple[int, int], float | None] = {}
    prov: dict[int, tuple[str, int]] = {}
    acc: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))  # length -> sample -> accs
    h_len: dict[int, list[float]] = defaultdict(list)
    by_n: dict[int, list[dict]] = defaultdict(list)
    h_max: dict[int, float] = {}
    counts: dict[int, tuple[int, float | None]] = {}  # sample -> (most tokens reconstructed, that text's H_LM)
    unknown: set[int] = set()  # samples with a reconstructed row whose token count is unknown
    for r in rows:
        s, n = r["sample"], r["length"]
        prov[s] = (r["doc"], r["offset"])
        ok = judged_score(r) >= threshold
        if ok:
            k = fitted_tokens(r)
            if k is None:
                unknown.add(s)
            elif k > counts.get(s, (0, None))[0]:
                counts[s] = (k, r["h_lm_bits"])
            if r["h_lm_bits"] is not None:
                h_max[s] = max(h_max.get(s, 0.0), r["h_lm_bits"])
        per[s].setdefault(r["seed"], 0)
        if whole_short(r):  # a short text fitted whole: C_tokens only, never a grid value
            continue
        by_n[n].append(r)
        h_at[(s, n)] = r["h_lm_bits"]
        per[s][r["seed"]] = max(per[s][r["seed"]], n if ok else 0)
        acc[n][s].append(judged_score(r))
        if r["h_lm_bits"] is not None:
            h_len[n].append(r["h_lm_bits"])
    for s in sorted(per):
        cap = max(per[s].values())
        tokens = None if s in unknown else counts.get(s, (0, None))[0]
        h = counts[s][1] if tokens else h_at.get((s, cap))
        out.samples.append(SampleCapacity(s, *prov[s], cap, dict(per[s]), h, h_max.get(s), tokens))
    for n in sorted(acc):
        best = [max(v) for v in acc[n].values()]
        every = [a for v in acc[n].values() for a in v]
        files = {r["proto_path"]: r for r in by_n[n] if r["decode_seconds"]}  # one decode per file
        secs = sum(r["decode_seconds"] for r in files.values())
        evals = [r.get("evals") for r in by_n[n]]
        out.by_length[n] = {
            "evals": sum(evals) if None not in evals else None,  # the work: forward+backward evaluations
            "fit_s_sum": sum(r["fit_seconds"] for r in by_n[n]),
            "tf_mean": statistics.fmean(r["accuracy"] for r in by_n[n]),
            "fit_s": statistics.fmean(r["fit_seconds"] for r in by_n[n]),
            "decode_tps": sum(r["decode_tokens"] for r in files.values()) / secs if secs else None,
            "best": statistics.fmean(best),
            "mean": statistics.fmean(every),
            "std": statistics.pstdev(every) if len(every) > 1 else 0.0,
            "passed": sum(b >= threshold for b in best),
            "samples": len(best),
            "h_lm": nats(statistics.fmean(h_len[n])) if h_len[n] else None,  # nats
        }
    return out


EXPERIMENT = Experiment(
    "capacity",
    plan_capacity,
    run_capacity,
    lambda summary: summary.render(),
    prefix_lengths,
    warm_starts=True,
    share=lambda cfg: cfg.share,
    whole_texts=True,
)
