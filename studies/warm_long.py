"""Long warm starts: from a capacity walk's stored solutions at one length, how do recipes fare at the next?

Reads the (e, m) that a warm capacity walk (`prototok capacity --warm prefix`) stored for each sample at
--from-length, and fits the same samples at --length from them, once per recipe, one text at a time (batch 1:
the time a text costs alone). One JSON line per (recipe, sample): accuracy, evaluations, seconds. This is how
the warm-start stall rule of `fast-lbfgs` is checked at N=128, and how a near-solution is refitted at its own
length (--from-length = --length) under another recipe, e.g. a focal loss.

    python studies/warm_long.py --db results/capacity_walks.db --data wiki --samples 0 1 --from-length 90 \
        --length 128 --cap 1500 --out studies/results/warm_long128_cpu.jsonl fast-lbfgs:stall_after=0 fast-lbfgs
"""

from __future__ import annotations

import argparse
import json
import time

from prototok.experiments.texts import load, prefixes
from prototok.files import write_json_lines
from prototok.fit import fit
from prototok.models import load_model
from prototok.recipes import parse_recipe
from prototok.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipes", nargs="+", help="NAME or NAME:field=value,...")
    ap.add_argument("--db", default="results/capacity_walks.db")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data", default="wiki")
    ap.add_argument("--data-seed", type=int, default=23)
    ap.add_argument("--min-chars", type=int, default=1500)
    ap.add_argument("--samples", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--from-length", type=int, default=90)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--walk-recipe", default="fast-lbfgs(max_steps=1000)+prefix-warm", help="the stored rows' recipe")
    ap.add_argument("--cap", type=int, default=1500)
    ap.add_argument(
        "--e-norm",
        type=float,
        default=None,
        help="rescale each stored e to this L2 norm first (long warm chains grow e)",
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    lm = load_model(args.model, "cpu")
    source, samples = load(args.data, max(args.samples) + 1, lm, data_seed=args.data_seed, min_chars=args.min_chars)
    texts = prefixes(lm, samples, [args.length], h_lm=False)
    store = Store(args.db, readonly=True)
    starts = {}
    for s in args.samples:
        (row,) = store.rows(source=source, sample=s, length=args.from_length, recipe=args.walk_recipe, seed=0)
        e, m = store.solution(row)
        if args.e_norm is not None:
            e = e * (args.e_norm / e.norm())
        starts[s] = (e, m)
    out = []
    for spec in args.recipes:
        rec = parse_recipe(spec, max_steps=args.cap)
        for s in args.samples:
            t0 = time.perf_counter()
            (r,) = fit(lm, [texts[s].tokens[args.length]], recipe=rec, seed=0, warm_start=[starts[s]], batch_size=1)
            line = {
                "recipe": spec,
                "sample": s,
                "from": args.from_length,
                "length": args.length,
                "e_norm": args.e_norm,
                "accuracy": r.accuracy,
                "solved": bool(r.solved),
                "best_step": r.steps,
                "evals": r.steps_run,
                "seconds": time.perf_counter() - t0,
            }
            print(json.dumps(line), flush=True)
            out.append(line)
    if args.out:
        write_json_lines(args.out, out)


if __name__ == "__main__":
    main()
