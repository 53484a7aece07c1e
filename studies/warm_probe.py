"""Warm-start probe: from a shorter prefix's solution, how many evaluations does each recipe need at the next length?

Fits the first `--start` tokens of each text cold, then walks the given lengths, every recipe starting each length
from its own solution of the previous one. One JSON line per (recipe, length): evaluations and accuracy per text.
This is how fast-lbfgs's warm rule (L-BFGS from the first step) was chosen. (`prototok capacity --warm prefix`
walks lengths too, but cold-fits the first length with each recipe and stops at the first length no text
reconstructs; here every recipe starts from the same cold fit and walks every length given.)

    python studies/warm_probe.py --texts 2 --data-seed 7 --start 22 --lengths 32 45 fast-lbfgs fast-lbfgs:lbfgs_after=0
"""

from __future__ import annotations

import argparse
import json
import time

from prototok.experiments.texts import exact_length_texts
from prototok.fit import fit
from prototok.models import load_model
from prototok.recipes import parse_recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipes", nargs="+", help="NAME or NAME:field=value,...")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--texts", type=int, default=2)
    ap.add_argument("--data", default="wiki")
    ap.add_argument("--data-seed", type=int, default=7)
    ap.add_argument("--start", type=int, default=22, help="cold fit of this many tokens (fast-lbfgs)")
    ap.add_argument("--lengths", type=int, nargs="+", default=[32, 45])
    ap.add_argument("--cap", type=int, default=600)
    args = ap.parse_args()
    lm = load_model(args.model, "cpu")
    toks = exact_length_texts(lm, max(args.lengths), args.texts, args.data, data_seed=args.data_seed)
    start = fit(lm, [t[: args.start] for t in toks], recipe=parse_recipe("fast-lbfgs", max_steps=args.cap), seed=0)
    print(json.dumps({"recipe": "fast-lbfgs (cold)", "n_tokens": args.start, "evals": [r.steps_run for r in start]}))
    for spec in args.recipes:
        rec = parse_recipe(spec, max_steps=args.cap)
        prev = [(r.e, r.m) for r in sorted(start, key=lambda r: r.index)]
        for n in args.lengths:
            t0 = time.perf_counter()
            out = sorted(fit(lm, [t[:n] for t in toks], recipe=rec, seed=0, warm_start=prev), key=lambda r: r.index)
            row = {"recipe": spec, "n_tokens": n, "evals": [r.steps_run for r in out]}
            row |= {"accuracy": [round(r.accuracy, 4) for r in out], "wall_s": round(time.perf_counter() - t0, 1)}
            print(json.dumps(row), flush=True)
            prev = [(r.e, r.m) for r in out]


if __name__ == "__main__":
    main()
