"""Warm against cold capacity walks from one results db, as the README's issue-16 tables: per source and length,
each text's evaluations (cold, warm), the warm accuracy, the work of each walk so far and their ratio, and the
warm walk's fit minutes so far per text. Work so far sums only the texts both walks fitted at every length up to
there, so the ratio compares the same texts. --goal N adds, per text of the warm walk, whether it reconstructs N
tokens exactly and what its whole walk up to N cost (issue 16's goal 2: 128 tokens within 30 minutes of fitting).
--norms adds the L2 norm of each stored e of the warm walk: long warm chains carry a large e that extended worse
(README, goal 2 under `fast-lbfgs-hold`; a correlate there, not the cause).

    python bench/walk_tables.py --db results/issue16.db --recipe "fast-lbfgs(max_steps=1000)"
    python bench/walk_tables.py --db results/issue16.db --recipe "fast-lbfgs-keep(max_steps=1500)" \
        --cold "fast-lbfgs(max_steps=1000)" --goal 128 --norms
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable

from prototok.store import Store


def walk(rows: list[dict]) -> dict[int, dict[int, dict]]:
    """length -> sample -> row."""
    out: dict[int, dict[int, dict]] = defaultdict(dict)
    for r in rows:
        out[r["length"]][r["sample"]] = r
    return out


def texts(warm: dict) -> list[int]:
    """The samples a walk fitted at any length."""
    return sorted({s for rows in warm.values() for s in rows})


def table(source: str, cold: dict, warm: dict) -> str:
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


def goal(source: str, warm: dict, n: int) -> str:
    """Per text: exact at n or not, and its walk's evaluations and fit minutes summed over every length up to n."""
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


def norms(source: str, warm: dict, e_norm: Callable[[dict], float]) -> str:
    """Per length, each text's |e| as stored by the warm walk, beside its accuracy."""
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--recipe", default="fast-lbfgs(max_steps=1000)", help="the warm walk's recipe key (+prefix-warm)")
    ap.add_argument("--cold", default=None, help="the cold walk's recipe key (default: --recipe)")
    ap.add_argument("--goal", type=int, default=None, help="also a per-text summary of the warm walk up to this length")
    ap.add_argument("--norms", action="store_true", help="also |e| of every stored solution of the warm walk")
    args = ap.parse_args()
    store = Store(args.db, readonly=True)
    cold_key = args.cold or args.recipe
    keys = {cold_key, args.recipe + "+prefix-warm"}
    rows = [r for r in store.rows(experiment="capacity", sharing="none") if r["recipe"] in keys]
    files: dict = {}  # a batch's texts share one proto-token file: read it once
    for source in sorted({r["source"] for r in rows}):
        mine = [r for r in rows if r["source"] == source]
        cold = walk([r for r in mine if r["recipe"] == cold_key])
        warm = walk([r for r in mine if r["recipe"] == args.recipe + "+prefix-warm"])
        print(table(source, cold, warm) + "\n")
        if args.goal and warm:
            print(goal(source, warm, args.goal) + "\n")
        if args.norms and warm:
            print(norms(source, warm, lambda r: float(store.solution(r, files)[0].norm())) + "\n")


if __name__ == "__main__":
    main()
