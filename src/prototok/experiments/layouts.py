"""Table 1 of arXiv 2505.21189: how e and m are arranged. Every layout of LAYOUTS is fitted over lengths 1, 2,
4, 8, ... and reported as mean and std token accuracy."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

from ..layouts import LAYOUTS, Layout, get_layout
from .runner import THRESHOLD, Experiment, Plan, Run, chunks_of
from .texts import Prefixes, usable_lengths

LAYOUT_LENGTHS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


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
        object.__setattr__(self, "layouts", tuple(lay.name for lay in self.lays))  # resolved now, once: names as stored

    @cached_property
    def lays(self) -> tuple[Layout, ...]:
        """The layouts themselves (`layouts` are their names, as stored), resolved once."""
        return tuple(get_layout(x) for x in self.layouts)


def _layout_items(run: Run, texts: list[Prefixes], cfg: LayoutsConfig, lay: Layout, n: int) -> list:
    return [t.item(n, seed, lay.name) for seed in cfg.seeds for t in texts if n in t.tokens]


def plan_layouts(run: Run, texts: list[Prefixes], cfg: LayoutsConfig) -> Plan:
    plan = Plan(
        f"layouts (Table 1): {len(texts)} samples x {len(cfg.lengths)} lengths x {len(cfg.seeds)} seeds "
        f"x {len(cfg.layouts)} layouts, recipe {run.recipe_key}"
    )
    for lay in cfg.lays:
        lengths, dropped = usable_lengths(run.lm, cfg.lengths, lay)
        if dropped:
            plan.notes.append(f"{lay.name}: lengths {dropped} do not fit the model's context ({run.lm.max_positions})")
        for n in lengths:
            items = _layout_items(run, texts, cfg, lay, n)
            todo = run.todo(items)
            plan.done += len(items) - len(todo)
            for seed in cfg.seeds:
                k = sum(it.seed == seed for it in todo)
                plan.calls += [(lay, n, c, c) for c in chunks_of(k, run.batch_size)]
    return plan


def run_layouts(run: Run, texts: list[Prefixes], cfg: LayoutsConfig) -> dict:
    """Fit every (layout, length, seed, sample); returns layout_table() of the stored rows."""
    for lay in cfg.lays:
        lengths, _ = usable_lengths(run.lm, cfg.lengths, lay)
        for n in lengths:
            for seed in cfg.seeds:
                run.fit_texts([t.item(n, seed, lay.name) for t in texts if n in t.tokens], lay)
            if cfg.stop_on_fail:
                rows = run.rows(length=n, layout=lay.name, sharing="none")
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


EXPERIMENT = Experiment(
    "layouts", plan_layouts, run_layouts, lambda table: render_layouts(table), lambda cfg: list(cfg.lengths)
)
