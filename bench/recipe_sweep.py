"""Recipe sweep: several recipes (named, with overrides) on the same texts, compared by work, not time.

Each configuration fits the same texts (per length) in one batch with the same seed and cap and prints one
JSON line: texts solved, the evaluations each took to solve (one forward+backward of one text each: an Adam
step and an L-BFGS line-search trial cost the same), median and p90, total evaluations, wall time, and every
text's final accuracy. Evaluations do not depend on machine load, so this runs beside other work; it is how
the recipes were chosen (README, Recipes). Use --data-seed to measure on texts other than those tuned on.
The first recipe is the baseline: every row also gives its median evaluations to solve, total evaluations and
wall time over the baseline's at the same length, in the same run (`*_ratio`, 1.0 on the baseline's own row).

    python bench/recipe_sweep.py --lengths 16 32 --texts 6 --cap 300 --data wiki \\
        fast-e50 fast-e50:optimizer=lbfgs,lbfgs_after=100 paper
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import RunLog, model_options, out_option, p90, ratios, texts_for
from prototok.fit import fit
from prototok.models import load_model
from prototok.recipes import parse_recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipes", nargs="+", help="NAME or NAME:field=value,... (the first is the baseline)")
    model_options(ap)
    ap.add_argument("--lengths", type=int, nargs="+", default=[16])
    ap.add_argument("--texts", type=int, default=6)
    ap.add_argument("--cap", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="wiki")
    ap.add_argument("--data-seed", type=int, default=0)
    out_option(ap, "after each recipe")
    args = ap.parse_args()
    recipes = [(spec, parse_recipe(spec, max_steps=args.cap)) for spec in args.recipes]  # bad specs fail first
    lm = load_model(args.model, args.device)
    log = RunLog(args.out, lm.device)
    for n in args.lengths:
        toks = texts_for(lm, n, args.texts, args.data, args.data_seed)
        base = None
        for spec, rec in recipes:
            t0 = time.perf_counter()
            res = fit(lm, toks, recipe=rec, seed=args.seed, batch_size=len(toks))
            evals = sorted(r.steps_run for r in res if r.solved)  # evaluations up to and including the solving one
            row = {
                "recipe": spec,
                "key": rec.key,
                "n_tokens": n,
                "texts": len(toks),
                "data": args.data,
                "data_seed": args.data_seed,
                "cap": args.cap,
                "solved": len(evals),
                "evals_to_solve": evals,
                "median_evals_to_solve": statistics.median(evals) if evals else None,
                "p90_evals_to_solve": p90(evals),
                "evals_total": sum(r.steps_run for r in res),
                "accuracy": [round(r.accuracy, 3) for r in res],
                "wall_s": round(time.perf_counter() - t0, 1),
            }
            base = base or row  # the first recipe's row at this length
            row["baseline"] = base["recipe"]
            log.add(row | ratios(row, base, ["median_evals_to_solve", "evals_total", "wall_s"], 3))


if __name__ == "__main__":
    main()
