"""One capacity table over several walks' stores, with the paper's Pythia-160M numbers beside it, and one
accuracy-vs-length figure (a panel per source).

The walks of the long-text findings live in separate stores (per-text walks on the default model, the layout
`e m^N`, a shared m, Gemma-3-270M), each resumable on its own. This reads them all (a store, or a store's CSV
export when the store itself is not tracked), keeps the capacity rows of the recipes asked for, and prints per
setting (model, source, layout, sharing kind, recipe): the papers' capacity statistic (per text the longest grid
length reconstructed at >= 0.99, max over texts), each text's capacity, the evaluations of each text's walk up to
its capacity and in all (a shared group's step is one evaluation of each of its texts), its fit minutes, and the
paper's number for the nearest model (Pythia-160M, [OS] Table 3: PG-19 / Fanfics for natural text, Random for
random words; its recipe and hardware, not prototok's).

    python studies/capacity_table.py --csv studies/results/capacity_walks_cpu.csv \\
        --db studies/results/layout_walks.db studies/results/shared_walks.db studies/results/gemma_walks.db \\
        --recipe "fast-lbfgs-keep(max_steps=1500)+prefix-warm" "fast-e50(max_steps=1500)+prefix-warm" \\
        --plot studies/results/capacity_table_cpu.png
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from dataclasses import fields
from pathlib import Path

from prototok.experiments.capacity import summarize
from prototok.report.capacity import COLUMNS as SETTING
from prototok.report.plotting import finish, log2_axis, pyplot
from prototok.report.reference import FANFICS, PG19, paper_number
from prototok.report.results import group_by, sharing_kind
from prototok.store import Row, Store

# the store's column types, to read a CSV export back (`created` stays the ISO text the export wrote)
TYPES = {f.name: {"int": int, "float": float}.get(str(f.type).split("|")[0].strip()) for f in fields(Row)}


def csv_rows(path: Path) -> list[dict]:
    """A `prototok export --format csv` file back into store-like rows (numbers parsed, empty cells None)."""
    out = []
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            row: dict = {}
            for k, v in r.items():
                kind = None if k == "created" else TYPES.get(k)
                row[k] = None if v == "" else kind(float(v)) if kind is int else kind(v) if kind else v
            out.append(row)
    return out


def paper_beside(source: str, sharing: str) -> str:
    """Pythia-160M's capacity in [OS] Table 3 for the kind of text a prototok source holds."""
    share = "m" if sharing_kind(sharing) == "m" else "none"
    if source.startswith("random"):
        n = paper_number("capacity", "pythia-160m", source="random-glove", share=share)
        return f"{n:g} (Random)"
    pg, ff = (paper_number("capacity", "pythia-160m", source=s, share=share) for s in (PG19, FANFICS))
    return f"{pg:g} / {ff:g} (PG-19 / Fanfics)"


def short(source: str) -> str:
    return source.split("@")[0]


def name(key: tuple) -> str:
    model, _, layout, sharing, recipe = key
    shared = ", m shared" if sharing_kind(sharing) == "m" else ""
    return f"{model}, {layout}{shared}, {recipe.split('(')[0]}"


def walk_work(rows: list[dict], capacity: dict[int, int]) -> dict[int, tuple[int, int, float]]:
    """Per text: evaluations up to its capacity, evaluations in all, fit minutes in all."""
    out = {}
    for s in sorted({r["sample"] for r in rows}):
        mine = [r for r in rows if r["sample"] == s]
        to_cap = sum(r["evals"] or r["steps"] for r in mine if r["length"] <= capacity.get(s, 0))
        total = sum(r["evals"] or r["steps"] for r in mine)
        out[s] = (to_cap, total, sum(r["fit_seconds"] or 0.0 for r in mine) / 60)
    return out


def table(settings: dict[tuple, list[dict]]) -> str:
    head = [
        "model", "source", "layout", "m shared", "recipe", "texts", "capacity", "per text",
        "evaluations to capacity, per text", "evaluations in all, per text", "fit minutes in all, per text",
        "Pythia-160M, paper",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (model, source, layout, sharing, recipe), rows in settings.items():
        s = summarize(rows)
        cap = {x.sample: x.capacity for x in s.samples}
        work = walk_work(rows, cap)
        cells = [
            model, short(source), f"`{layout}`", "yes" if sharing_kind(sharing) == "m" else "no", f"`{recipe}`",
            str(len(cap)), f"**{s.capacity}**", ", ".join(str(cap[k]) for k in sorted(cap)),
            ", ".join(str(w[0]) for w in work.values()), ", ".join(str(w[1]) for w in work.values()),
            ", ".join(f"{w[2]:.0f}" for w in work.values()), paper_beside(source, sharing),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(settings: dict[tuple, list[dict]], path: Path) -> Path:
    """Mean token accuracy over a setting's texts at each length it fitted (texts as faint points); a setting
    keeps its colour in every panel."""
    plt = pyplot()
    sources = sorted({short(k[1]) for k in settings})
    names = sorted({name(k) for k in settings})
    colour = dict(zip(names, [f"C{i}" for i in range(len(names))], strict=True))
    fig, axes = plt.subplots(1, len(sources), figsize=(5 * len(sources), 4), squeeze=False, sharey=True)
    for ax, src in zip(axes[0], sources, strict=True):
        lengths: set[int] = set()
        for key, rows in settings.items():
            if short(key[1]) != src:
                continue
            by_n: dict[int, list[float]] = defaultdict(list)
            for r in rows:
                by_n[r["length"]].append(r["accuracy"])
            ns = sorted(by_n)
            lengths |= set(ns)
            c = colour[name(key)]
            ax.plot(ns, [sum(by_n[n]) / len(by_n[n]) for n in ns], marker="o", ms=3, color=c, label=name(key))
            for n in ns:
                ax.scatter([n] * len(by_n[n]), by_n[n], s=6, color=c, alpha=0.35)
        ax.axhline(0.99, color="grey", lw=0.6, ls=":")
        log2_axis(ax, lengths)
        if ax is axes[0][0]:
            ax.set(ylabel="mean token accuracy over texts")
        if ax is not axes[0][-1]:
            ax.set(title=src, xlabel="N (tokens)")
            ax.legend(fontsize=6)
    return finish(fig, axes[0][-1], path, title=sources[-1], xlabel="N (tokens)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", nargs="*", default=[], type=Path, help="results stores (read-only)")
    ap.add_argument("--csv", nargs="*", default=[], type=Path, help="CSV exports of stores")
    ap.add_argument("--recipe", nargs="*", default=None, help="keep only these recipe keys (default: all)")
    ap.add_argument("--plot", type=Path, default=None, help="also the accuracy-vs-length figure (PNG)")
    args = ap.parse_args()
    rows = [r for p in args.csv for r in csv_rows(p)]
    rows += [r for p in args.db for r in Store(p, readonly=True).rows()]
    rows = [r for r in rows if r["experiment"] == "capacity" and (args.recipe is None or r["recipe"] in args.recipe)]
    settings = group_by(rows, *SETTING)
    print(table(settings))
    if args.plot:
        print(f"\nfigure: {plot(settings, args.plot)}")


if __name__ == "__main__":
    main()
