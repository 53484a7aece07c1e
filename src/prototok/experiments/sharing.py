"""Table 2 of arXiv 2505.21189: groups of texts share one vector (m, or e) and own the other; accuracy is
reported as the max over seeds (per text, then mean over texts) and the average over seeds.

Sharing e under the layout e m^(N-1) forces one first token on the whole group: the output at position 0
sees e alone, so it is the same for every text of the group. We report it as measured, not corrected.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

from ..fit import init_id
from ..layouts import DEFAULT_LAYOUT, Layout, get_layout
from .runner import Experiment, Plan, Run
from .texts import Prefixes, usable_lengths

GROUPS = (1, 4, 16, 64, 256)
SHARED = ("m", "e")
SHARED_E_NOTE = (
    "sharing e under e m^(N-1) forces the same first token for the whole group (position 0 sees e alone); "
    "its accuracy is reported as measured"
)


@dataclass(frozen=True)
class SharingConfig:
    lengths: tuple[int, ...] = (64,)
    groups: tuple[int, ...] = GROUPS  # texts per group sharing one vector
    shared: tuple[str, ...] = SHARED  # which vector the group shares
    seeds: tuple[int, ...] = (0,)
    layout: str = DEFAULT_LAYOUT  # by name, as the rows carry it

    def __post_init__(self) -> None:
        if not self.lengths or min(self.lengths) < 1:
            raise ValueError(f"SharingConfig.lengths must be positive integers, got {self.lengths}")
        if not self.groups or min(self.groups) < 1:
            raise ValueError(f"SharingConfig.groups must be positive integers, got {self.groups}")
        if not self.shared or set(self.shared) - set(SHARED):
            raise ValueError(f"SharingConfig.shared must be among {SHARED}, got {self.shared}")
        if not self.seeds:
            raise ValueError("SharingConfig.seeds must name at least one seed")
        _ = self.lay  # resolved now, once: an unknown name is a ValueError naming the legal layouts

    @cached_property
    def lay(self) -> Layout:
        """The layout itself (`layout` is its name, as stored), resolved once."""
        return get_layout(self.layout)


def _groups(texts: list[Prefixes], n: int, size: int) -> list[list[Prefixes]]:
    have = [t for t in texts if n in t.tokens]
    return [have[i : i + size] for i in range(0, len(have) - size + 1, size)]


def plan_sharing(run: Run, texts: list[Prefixes], cfg: SharingConfig) -> Plan:
    plan = Plan(
        f"sharing (Table 2): {len(texts)} samples x {len(cfg.lengths)} lengths x {len(cfg.seeds)} seeds x "
        f"groups {list(cfg.groups)} sharing {'/'.join(cfg.shared)}, recipe {run.recipe_key}"
    )
    lengths, dropped = usable_lengths(run.lm, cfg.lengths, cfg.lay)
    if dropped:
        plan.notes.append(f"lengths {dropped} do not fit the model's context ({run.lm.max_positions})")
    for n in lengths:
        for kind in cfg.shared:
            for size in cfg.groups:
                groups = _groups(texts, n, size)
                if not groups:
                    plan.notes.append(f"groups of {size} need at least {size} samples of {n} tokens; skipped")
                for seed in cfg.seeds:
                    for g in groups:
                        items = [t.item(n, seed, cfg.layout, f"{kind}/{size}") for t in g]
                        todo = run.todo(items)
                        plan.done += len(items) - len(todo)
                        if todo:
                            plan.calls.append((cfg.lay, n, len(items), len(items)))
    if "e" in cfg.shared and cfg.lay.first_target == 0:
        plan.notes.append(SHARED_E_NOTE)
    return plan


def run_sharing(run: Run, texts: list[Prefixes], cfg: SharingConfig) -> dict:
    """Fit every group (texts in sample order, cut into consecutive groups of G); returns sharing_table()."""
    lengths, _ = usable_lengths(run.lm, cfg.lengths, cfg.lay)
    for n in lengths:
        for kind in cfg.shared:
            for size in cfg.groups:
                for seed in cfg.seeds:
                    for gi, g in enumerate(_groups(texts, n, size)):
                        items = [t.item(n, seed, cfg.layout, f"{kind}/{size}") for t in g]
                        # a group's own init stream: seed and group index (fit() draws shared, then own vectors)
                        run.fit_group(items, cfg.lay, kind, init_id(seed, gi))
    keep = {t.sample for t in texts}
    rows = [
        r
        for r in run.rows(layout=cfg.layout)
        if r["sharing"] != "none" and r["sample"] in keep and r["seed"] in cfg.seeds and r["length"] in lengths
    ]
    return sharing_table(rows)


def sharing_table(rows: list[dict]) -> dict[tuple[str, int, int], dict]:
    """(shared vector, group size, length) -> accuracy: max over seeds (per text, then mean +- std over texts, as
    the paper prints its "max" rows) and average (mean +- std over seeds and texts)."""
    acc: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        kind, size = r["sharing"].split("/")
        acc[(kind, int(size), r["length"])][r["sample"]].append(r["accuracy"])
    out = {}
    for key in sorted(acc, key=lambda k: (k[2], SHARED.index(k[0]) if k[0] in SHARED else 9, k[1])):
        per_text = acc[key]
        every = [a for v in per_text.values() for a in v]
        best = [max(v) for v in per_text.values()]
        out[key] = {
            "max": statistics.fmean(best),
            "max_std": statistics.pstdev(best) if len(best) > 1 else 0.0,
            "seeds": max(len(v) for v in per_text.values()),  # fits per text: the seeds "max" is taken over
            "mean": statistics.fmean(every),
            "std": statistics.pstdev(every) if len(every) > 1 else 0.0,
            "texts": len(per_text),
            "runs": len(every),
        }
    return out


def render_sharing(table: dict) -> str:
    lines = [f"{'shared':>6} {'group':>6} {'length':>7} {'acc max over seeds':>19} {'acc average':>12} {'texts':>6}"]
    for (kind, size, n), st in table.items():
        best = f"{st['max']:.4f}+-{st['max_std']:.4f}"
        lines.append(f"{kind:>6} {size:>6} {n:>7} {best:>19} {st['mean']:>12.4f} {st['texts']:>6}")
    if any(k[0] == "e" for k in table):
        lines.append(f"note: {SHARED_E_NOTE}")
    return "\n".join(lines)


EXPERIMENT = Experiment(
    "sharing",
    plan_sharing,
    run_sharing,
    lambda table: render_sharing(table),
    lambda cfg: list(cfg.lengths),
    share=lambda cfg: cfg.shared[0],
)
