"""Whether a stored solution decodes the same in another precision: fp32 weights against bf16 weights.

For every row of a capacity walk's store at the given lengths (the walk's texts rebuilt from the source, data
seed and minimum length it used), the stored (e, m) is decoded in one pass with float32 weights and with
bfloat16 weights, and each output compared with the text. One JSON line per row: source, sample, length, the
stored accuracy, and the token accuracy of each decode. Why: the fit runs in fp32 (the precision rule); whether
its solutions could be decoded faster in bf16 is a separate question from whether bf16 can fit.

    python studies/decode_precision.py --db results/capacity_walks.db \\
        --recipe "fast-lbfgs-keep(max_steps=1500)+prefix-warm" --data wiki austen random --lengths 64 90 128

With --fresh N, no store is read: texts of exactly N tokens (--data, --data-seed) are fitted in fp32 for at most
--cap evaluations (the default recipe; exact or not) and each solution decoded both ways; `agreement` is the
fraction of positions where the bf16 decode writes what the fp32 decode writes, which does not need an exact fit.

    python studies/decode_precision.py --fresh 128 --texts 2 --cap 300 --data wiki --data-seed 41
"""

from __future__ import annotations

import argparse
import json

import torch

from prototok.experiments.texts import exact_length_texts, load, prefixes
from prototok.fit import fit
from prototok.layouts import get_layout
from prototok.models import load_model
from prototok.onepass import decode_vectors
from prototok.recipes import DEFAULT_RECIPE, get_recipe
from prototok.store import Store

LAYOUT = get_layout("e m^(N-1)")  # --fresh fits: the default layout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="results/capacity_walks.db")
    ap.add_argument("--recipe", help="the walk's stored recipe key (required without --fresh)")
    ap.add_argument("--data", nargs="+", default=["wiki"])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--data-seed", type=int, default=23)
    ap.add_argument("--min-chars", type=int, default=1500)
    ap.add_argument("--lengths", type=int, nargs="+", default=[128])
    ap.add_argument("--fresh", type=int, default=0, help="fit texts of this many tokens instead of reading a store")
    ap.add_argument("--texts", type=int, default=2, help="with --fresh: how many texts")
    ap.add_argument("--cap", type=int, default=300, help="with --fresh: evaluations per text")
    args = ap.parse_args()
    models = {dtype: load_model(args.model, "cpu", dtype) for dtype in ("float32", "bfloat16")}
    if args.fresh:
        fresh(models, args)
        return
    if not args.recipe:
        raise SystemExit("--recipe: the walk's stored recipe key (or --fresh N)")
    store = Store(args.db, readonly=True)
    files: dict = {}
    for spec in args.data:
        source, loaded = load(spec, args.samples, models["float32"], data_seed=args.data_seed, min_chars=args.min_chars)
        rows = [
            r
            for r in store.rows(source=source, recipe=args.recipe)
            if r["length"] in args.lengths and r["sample"] < args.samples
        ]
        lengths = sorted({r["length"] for r in rows})
        walked = prefixes(models["float32"], loaded, lengths, h_lm=False)
        tokens = {(p.sample, n): t for p in walked for n, t in p.tokens.items()}
        for r in sorted(rows, key=lambda r: (r["length"], r["sample"])):
            ref = tokens[(r["sample"], r["length"])]
            e, m = store.solution(r, files)
            line = {"source": source, "sample": r["sample"], "length": r["length"], "layout": r["layout"]}
            line["stored_accuracy"] = r["accuracy"]
            for dtype, lm in models.items():
                out = decode_vectors(lm, e[None], m[None], get_layout(r["layout"]), [len(ref)])[0]
                line[f"decoded_{dtype}"] = round(sum(a == b for a, b in zip(out, ref)) / len(ref), 4)
            print(json.dumps(line), flush=True)


def fresh(models: dict, args: argparse.Namespace) -> None:
    """Fit --texts texts of --fresh tokens in fp32 (default recipe, --cap) and decode each solution both ways."""
    lm = models["float32"]
    toks = exact_length_texts(lm, args.fresh, args.texts, args.data[0], data_seed=args.data_seed)
    res = fit(lm, toks, layout=LAYOUT, recipe=get_recipe(DEFAULT_RECIPE, max_steps=args.cap), batch_size=len(toks))
    e, m = torch.stack([r.e for r in res]), torch.stack([r.m for r in res])  # (T, D), (T, D)
    outs = {dtype: decode_vectors(lm, e, m, LAYOUT, [len(t) for t in toks]) for dtype, lm in models.items()}
    for i, (r, ref) in enumerate(zip(res, toks)):
        a, b = outs["float32"][i], outs["bfloat16"][i]
        line = {"data": args.data[0], "data_seed": args.data_seed, "text": i, "length": len(ref), "layout": LAYOUT.name}
        line |= {"fit_accuracy": round(r.accuracy, 4), "evaluations": r.steps_run}
        line["decoded_float32"] = round(sum(x == y for x, y in zip(a, ref)) / len(ref), 4)
        line["decoded_bfloat16"] = round(sum(x == y for x, y in zip(b, ref)) / len(ref), 4)
        line["agreement"] = round(sum(x == y for x, y in zip(a, b)) / len(ref), 4)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
