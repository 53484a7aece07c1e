"""Warm against cold capacity walks, as markdown tables from the rows of one results store.

A capacity walk (`prototok capacity`) fits each text at every grid length; a warm walk (`--warm prefix`, rows
keyed RECIPE+prefix-warm) starts each length from the text's own solution one grid length shorter, a cold walk
draws afresh. These tables put the two side by side per source and length: each text's evaluations, the warm
accuracy, the work of each walk so far and their ratio (over the texts both walks fitted at every length up to
there, so the ratio compares the same texts), and the warm walk's fit minutes so far. `summary_at` adds, per text
of the warm walk, whether it reconstructs N tokens exactly and what its whole walk up to N cost; `norms` lists
the L2 norm of each stored e (long warm chains carry a large e).

Rows are the store's dicts (`Store.rows`): the fields read are sample, length, accuracy, evals and fit_seconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from ..store import Store

WARM_SUFFIX = "+prefix-warm"  # what a warm walk's rows add to their recipe key (methods.OnePass.key)

Walk = dict[int, dict[int, dict]]  # length -> sample -> row


def walk(rows: list[dict]) -> Walk:
    """length -> sample -> row."""
    out: Walk = defaultdict(dict)
    for r in rows:
        out[r["length"]][r["sample"]] = r
    return out


def texts(warm: Walk) -> list[int]:
    """The samples a walk fitted at any length."""
    return sorted({s for rows in warm.values() for s in rows})


def table(source: str, cold: Walk, warm: Walk) -> str:
    """Per length: both walks' evaluations per text, the warm accuracy, the work so far and its ratio, and the
    warm walk's cumulative fit minutes per text."""
    lines = [
        f"{source} (evaluations per text, in sample order; fit minutes per text, cumulative):",
        "",
        "| N | cold: evaluations | warm: evaluations | warm accuracy | cold walk so far | warm walk so far "
        "| warm / cold so far | warm fit minutes so far |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    both = None  # samples fitted by both walks at every length so far
    so_far_c = so_far_w = 0
    minutes: dict[int, float] = defaultdict(float)
    for n in sorted(set(cold) | set(warm)):
        c, w = cold.get(n, {}), warm.get(n, {})
        for s, r in w.items():
            minutes[s] += r["fit_seconds"] / 60
        common = set(c) & set(w)
        both = common if both is None else both & common
        if c and w and both:
            so_far_c += sum(c[s]["evals"] for s in both)
            so_far_w += sum(w[s]["evals"] for s in both)
        ratio = f"{so_far_w / so_far_c:.2f}" if c and w and both else "-"
        cells = [
            str(n),
            ", ".join(str(c[s]["evals"]) for s in sorted(c)) or "-",
            ", ".join(str(w[s]["evals"]) for s in sorted(w)) or "-",
            ", ".join(f"{w[s]['accuracy']:.3f}" for s in sorted(w)) or "-",
            str(so_far_c) if c and both else "-",
            str(so_far_w) if w and both and c else "-",
            ratio,
            ", ".join(f"{minutes[s]:.1f}" for s in sorted(w)) or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_at(source: str, warm: Walk, n: int) -> str:
    """Per text: exact at n or not, and its walk's evaluations and fit minutes summed over every length up to n.
    Exact means every token right (accuracy 1.0), stricter than the capacity threshold."""
    lines = [
        f"{source}, {n} tokens (the whole warm walk up to {n}, per text):",
        "",
        f"| text | accuracy at {n} | exact | longest exact length | evaluations, walk to {n} "
        f"| fit minutes, walk to {n} |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in texts(warm):
        path = [warm[m][s] for m in sorted(warm) if m <= n and s in warm[m]]
        top = warm.get(n, {}).get(s)
        exact = [r["length"] for r in path if r["accuracy"] >= 1.0]
        cells = [
            str(s),
            f"{top['accuracy']:.3f}" if top else "-",
            ("yes" if top["accuracy"] >= 1.0 else "no") if top else "-",  # "-": the walk has not fitted n yet
            str(max(exact)) if exact else "-",
            str(sum(r["evals"] for r in path)),
            f"{sum(r['fit_seconds'] for r in path) / 60:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def norms(source: str, warm: Walk, e_norm: Callable[[dict], float]) -> str:
    """Per length, each text's |e| as stored by the warm walk (e_norm reads it from a row), beside its accuracy."""
    samples = texts(warm)
    lines = [
        f"{source}: |e| of each stored solution (accuracy), per text in sample order:",
        "",
        "| N | " + " | ".join(f"text {s}" for s in samples) + " |",
        "| --- |" + " --- |" * len(samples),
    ]
    for n in sorted(warm):
        cells = [f"{e_norm(warm[n][s]):.0f} ({warm[n][s]['accuracy']:.3f})" if s in warm[n] else "-" for s in samples]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def walk_tables(
    store: Store, recipe: str, cold: str | None = None, *, at: int | None = None, with_norms: bool = False
) -> list[str]:
    """Every table for one store, per source in name order: `table`, then `summary_at(at)` and `norms` of the
    warm walk when asked for. recipe: the walks' recipe key (the warm rows' is recipe + WARM_SUFFIX); cold: the
    cold walk's recipe key (default: recipe)."""
    cold_key, warm_key = cold or recipe, recipe + WARM_SUFFIX
    rows = [r for r in store.rows(experiment="capacity", sharing="none") if r["recipe"] in {cold_key, warm_key}]
    files: dict = {}  # a batch's texts share one proto-token file: read it once
    out = []
    for source in sorted({r["source"] for r in rows}):
        mine = [r for r in rows if r["source"] == source]
        cold_walk = walk([r for r in mine if r["recipe"] == cold_key])
        warm_walk = walk([r for r in mine if r["recipe"] == warm_key])
        out.append(table(source, cold_walk, warm_walk))
        if at and warm_walk:
            out.append(summary_at(source, warm_walk, at))
        if with_norms and warm_walk:
            out.append(norms(source, warm_walk, lambda r: float(store.solution(r, files)[0].norm())))
    return out
