"""The paper's ablations: Table 1 (how e and m are arranged) and Table 2 (sharing e or m across texts).

Table 1 fits every layout of LAYOUTS over lengths 1, 2, 4, 8, ... and reports mean and std token accuracy.
Table 2 fits groups of G texts that share one vector (m, or e) and own the other; accuracy is reported as
the max over seeds (per text, then mean over texts) and the average over seeds.

Sharing e under the layout e m^(N-1) forces one first token on the whole group: the output at position 0
sees e alone, so it is the same for every text of the group. We report it as measured, not corrected.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from ..layouts import DEFAULT_LAYOUT, LAYOUTS, get_layout
from . import THRESHOLD, Plan, Prefixes, Run, chunks_of, usable_lengths

LAYOUT_LENGTHS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
GROUPS = (1, 4, 16, 64, 256)
SHARED = ("m", "e")
SHARED_E_NOTE = (
    "sharing e under e m^(N-1) forces the same first token for the whole group (position 0 sees e alone); "
    "its accuracy is reported as measured"
)


@dataclass(frozen=True)
class LayoutsConfig:
    lengths: tuple[int, ...] = LAYOUT_LENGTHS
    layouts: tuple[str, ...] = tuple(LAYOUTS)
    seeds: tuple[int, ...] = (0,)
    stop_on_fail: bool = False  # skip longer lengths of a layout once one is reconstructed by no text

    def __post_init__(self) -> None:
        if not self.lengths or min(self.lengths) < 1:
            raise ValueError(f"LayoutsConfig.lengths must be positive integers, got {self.lengths}")
        if not self.seeds:
            raise ValueError("LayoutsConfig.seeds must name at least one seed")
        object.__setattr__(self, "layouts", tuple(get_layout(x).name for x in self.layouts))


@dataclass(frozen=True)
class SharingConfig:
    lengths: tuple[int, ...] = (64,)
    groups: tuple[int, ...] = GROUPS  # texts per group sharing one vector
    shared: tuple[str, ...] = SHARED  # which vector the group shares
    seeds: tuple[int, ...] = (0,)
    layout: str = DEFAULT_LAYOUT

    def __post_init__(self) -> None:
        if not self.lengths or min(self.lengths) < 1:
            raise ValueError(f"SharingConfig.lengths must be positive integers, got {self.lengths}")
        if not self.groups or min(self.groups) < 1:
            raise ValueError(f"SharingConfig.groups must be positive integers, got {self.groups}")
        if not self.shared or set(self.shared) - set(SHARED):
            raise ValueError(f"SharingConfig.shared must be among {SHARED}, got {self.shared}")
        if not self.seeds:
            raise ValueError("SharingConfig.seeds must name at least one seed")
        get_layout(self.layout)


# ------------------------------------------------------------------------------------------------ Table 1


def _layout_items(run: Run, texts: list[Prefixes], cfg: LayoutsConfig, layout: str, n: int) -> list:
    return [t.item(n, seed, layout) for seed in cfg.seeds for t in texts if n in t.tokens]


def plan_layouts(run: Run, texts: list[Prefixes], cfg: LayoutsConfig) -> Plan:
    plan = Plan(
        f"layouts (Table 1): {len(texts)} samples x {len(cfg.lengths)} lengths x {len(cfg.seeds)} seeds "
        f"x {len(cfg.layouts)} layouts, recipe {run.recipe_key}"
    )
    for layout in cfg.layouts:
        lengths, dropped = usable_lengths(run.lm, cfg.lengths, layout)
        if dropped:
            plan.notes.append(f"{layout}: lengths {dropped} do not fit the model's context ({run.lm.max_positions})")
        for n in lengths:
            items = _layout_items(run, texts, cfg, layout, n)
            todo = run.todo(items)
            plan.done += len(items) - len(todo)
            for seed in cfg.seeds:
                k = sum(it.seed == seed for it in todo)
                plan.calls += [(layout, n, c, c) for c in chunks_of(k, run.batch_size)]
    return plan


def run_layouts(run: Run, texts: list[Prefixes], cfg: LayoutsConfig) -> dict:
    """Fit every (layout, length, seed, sample); returns layout_table() of the stored rows."""
    for layout in cfg.layouts:
        lengths, _ = usable_lengths(run.lm, cfg.lengths, layout)
        for n in lengths:
            for seed in cfg.seeds:
                run.fit_texts([t.item(n, seed, layout) for t in texts if n in t.tokens])
            if cfg.stop_on_fail:
                rows = run.rows(length=n, layout=layout, sharing="none")
                if rows and not any(r["accuracy"] >= THRESHOLD for r in rows):
                    break
    keep = {t.sample for t in texts}
    rows = [r for r in run.rows(sharing="none") if r["sample"] in keep and r["seed"] in cfg.seeds]
    return layout_table([r for r in rows if r["layout"] in cfg.layouts])


def layout_table(rows: list[dict]) -> dict[str, dict[int, tuple[float, float, int]]]:
    """layout -> length -> (mean accuracy, std, number of (sample, seed) runs)."""
    acc: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        acc[r["layout"]][r["length"]].append(r["accuracy"])
    order = {name: i for i, name in enumerate(LAYOUTS)}
    return {
        lay: {
            n: (statistics.fmean(v), statistics.pstdev(v) if len(v) > 1 else 0.0, len(v)) for n, v in sorted(d.items())
        }
        for lay, d in sorted(acc.items(), key=lambda kv: order.get(kv[0], len(order)))
    }


def render_layouts(table: dict) -> str:
    lengths = sorted({n for d in table.values() for n in d})
    width = max([len(x) for x in table] + [6])
    lines = [f"{'layout':<{width}} " + " ".join(f"{n:>13}" for n in lengths)]
    for lay, d in table.items():
        cells = [f"{d[n][0]:.3f}+-{d[n][1]:.3f}" if n in d else "-" for n in lengths]
        lines.append(f"{lay:<{width}} " + " ".join(f"{c:>13}" for c in cells))
    lines.append("mean +- std token accuracy over samples and seeds")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ Table 2


def _groups(texts: list[Prefixes], n: int, size: int) -> list[list[Prefixes]]:
    have = [t for t in texts if n in t.tokens]
    return [have[i : i + size] for i in range(0, len(have) - size + 1, size)]


def plan_sharing(run: Run, texts: list[Prefixes], cfg: SharingConfig) -> Plan:
    plan = Plan(
        f"sharing (Table 2): {len(texts)} samples x {len(cfg.lengths)} lengths x {len(cfg.seeds)} seeds x "
        f"groups {list(cfg.groups)} sharing {'/'.join(cfg.shared)}, recipe {run.recipe_key}"
    )
    lengths, dropped = usable_lengths(run.lm, cfg.lengths, cfg.layout)
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
                            plan.calls.append((cfg.layout, n, len(items), len(items)))
    if "e" in cfg.shared and get_layout(cfg.layout).first_target == 0:
        plan.notes.append(SHARED_E_NOTE)
    return plan


def run_sharing(run: Run, texts: list[Prefixes], cfg: SharingConfig) -> dict:
    """Fit every group (texts in sample order, cut into consecutive groups of G); returns sharing_table()."""
    lengths, _ = usable_lengths(run.lm, cfg.lengths, cfg.layout)
    for n in lengths:
        for kind in cfg.shared:
            for size in cfg.groups:
                for seed in cfg.seeds:
                    for gi, g in enumerate(_groups(texts, n, size)):
                        items = [t.item(n, seed, cfg.layout, f"{kind}/{size}") for t in g]
                        # a group's own init stream: seed and group index (fit() draws shared, then own vectors)
                        run.fit_group(items, kind, seed * 1_000_003 + gi)
    keep = {t.sample for t in texts}
    rows = [
        r
        for r in run.rows(layout=cfg.layout)
        if r["sharing"] != "none" and r["sample"] in keep and r["seed"] in cfg.seeds and r["length"] in lengths
    ]
    return sharing_table(rows)


def sharing_table(rows: list[dict]) -> dict[tuple[str, int, int], dict]:
    """(shared vector, group size, length) -> accuracy: max over seeds (per text, mean over texts) and average."""
    acc: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        kind, size = r["sharing"].split("/")
        acc[(kind, int(size), r["length"])][r["sample"]].append(r["accuracy"])
    out = {}
    for key in sorted(acc, key=lambda k: (k[2], SHARED.index(k[0]) if k[0] in SHARED else 9, k[1])):
        per_text = acc[key]
        every = [a for v in per_text.values() for a in v]
        out[key] = {
            "max": statistics.fmean(max(v) for v in per_text.values()),
            "mean": statistics.fmean(every),
            "std": statistics.pstdev(every) if len(every) > 1 else 0.0,
            "texts": len(per_text),
            "runs": len(every),
        }
    return out


def render_sharing(table: dict) -> str:
    lines = [f"{'shared':>6} {'group':>6} {'length':>7} {'acc max over seeds':>19} {'acc average':>12} {'texts':>6}"]
    for (kind, size, n), st in table.items():
        lines.append(f"{kind:>6} {size:>6} {n:>7} {st['max']:>19.4f} {st['mean']:>12.4f} {st['texts']:>6}")
    if any(k[0] == "e" for k in table):
        lines.append(f"note: {SHARED_E_NOTE}")
    return "\n".join(lines)
