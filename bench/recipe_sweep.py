"""Recipe sweep: several recipes (named, with overrides) on the same texts, compared by steps, not time.

Each configuration fits the same texts in one batch with the same seed and cap and prints one JSON line:
texts solved, their steps, median, and every text's final accuracy. Steps do not depend on machine load,
so this runs beside other work; it is how the default recipe was chosen (README, Recipes).

    python bench/recipe_sweep.py --length 16 --texts 6 --cap 300 --data wiki \\
        fast fast:e_scale=50 fast:schedule=cosine fast:restart_after=60 fast:lr=0.03
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from fit_speed import p90, texts_for, write_rows
from prototok.fit import fit
from prototok.models import load_model
from prototok.recipes import Recipe, get_recipe


def parse(spec: str, cap: int) -> Recipe:
    """'fast:e_scale=50,schedule=cosine' -> the named recipe with those fields (typed as the field is)."""
    name, _, over = spec.partition(":")
    base = get_recipe(name)
    fields = {}
    for kv in filter(None, over.split(",")):
        k, _, v = kv.partition("=")
        if not hasattr(base, k):
            raise SystemExit(f"recipe field '{k}' does not exist")
        fields[k] = type(getattr(base, k))(v)
    return get_recipe(name, max_steps=cap, **fields)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipes", nargs="+", help="NAME or NAME:field=value,...")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--device", default=None)
    ap.add_argument("--length", type=int, default=16)
    ap.add_argument("--texts", type=int, default=6)
    ap.add_argument("--cap", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="wiki")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the JSON lines here (atomically, after each recipe)")
    args = ap.parse_args()
    recipes = [(spec, parse(spec, args.cap)) for spec in args.recipes]  # bad specs fail before any fitting
    lm = load_model(args.model, args.device)
    toks = texts_for(lm, args.length, args.texts, args.data, args.data_seed)
    rows = []
    for spec, rec in recipes:
        t0 = time.perf_counter()
        res = fit(lm, toks, recipe=rec, seed=args.seed, batch_size=len(toks))
        steps = sorted(r.steps for r in res if r.solved)
        row = {
            "recipe": spec,
            "n_tokens": args.length,
            "texts": len(toks),
            "cap": args.cap,
            "solved": len(steps),
            "steps_to_solve": steps,
            "median_steps_to_solve": statistics.median(steps) if steps else None,
            "p90_steps_to_solve": p90(steps),
            "accuracy": [round(r.accuracy, 3) for r in res],
            "wall_s": round(time.perf_counter() - t0, 1),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
        if args.out:
            write_rows(args.out, rows)


if __name__ == "__main__":
    main()
