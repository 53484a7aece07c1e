"""First-position probe: can a recipe move output 0, which depends on e alone, on a given model?

The `fast` recipes scale e up because on SmolLM2-135M-Instruct a unit-scale e left output 0 stuck (the first
position is the attention sink). This asks whether that is the model or the method: for each model and recipe it
fits N=1 texts (only e, output 0: the paper's Table 1 N=1 column) and N-token prefixes, and reports how often
output 0 ends right against the other positions. One JSON line per (model, recipe, length).

    python studies/first_position.py --models smollm2-135m --lengths 1 8 --texts 8 --cap 500 \
        --out studies/results/first_position_cpu.jsonl paper fast-e50   # gemma3-270m: first_position_gemma_cpu
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from prototok.experiments.texts import exact_length_texts
from prototok.files import write_json_lines
from prototok.fit import fit
from prototok.layouts import get_layout
from prototok.models import load_model
from prototok.onepass import decode_vectors
from prototok.recipes import parse_recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipes", nargs="+", help="NAME or NAME:field=value,...")
    ap.add_argument("--models", nargs="+", default=["smollm2-135m"], help="built-in names or model folders")
    ap.add_argument("--lengths", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--texts", type=int, default=8)
    ap.add_argument("--cap", type=int, default=500)
    ap.add_argument("--data", default="wiki")
    ap.add_argument("--data-seed", type=int, default=23)
    ap.add_argument("--out", default=None, help="also write the JSON lines here (atomically, after each model)")
    args = ap.parse_args()
    recipes = [(spec, parse_recipe(spec, max_steps=args.cap)) for spec in args.recipes]
    rows = []
    for name in args.models:
        lm = load_model(name, "cpu")
        for n in args.lengths:
            # N=1: the first token of each text is mostly "The"; take token k of text k for variety
            pool = exact_length_texts(lm, max(n, args.texts), args.texts, args.data, data_seed=args.data_seed)
            toks = [t[i : i + 1] for i, t in enumerate(pool)] if n == 1 else [t[:n] for t in pool]
            for spec, rec in recipes:
                t0 = time.perf_counter()
                res = fit(lm, toks, recipe=rec, seed=0, batch_size=len(toks))
                res.sort(key=lambda r: r.index)
                e, m = torch.stack([r.e for r in res]), torch.stack([r.m for r in res])
                out = decode_vectors(lm, e, m, get_layout("e m^(N-1)"), [len(t) for t in toks])
                first = [o[0] == t[0] for o, t in zip(out, toks)]
                rest = [a == b for o, t in zip(out, toks) for a, b in zip(o[1:], t[1:])]
                solved = [r.steps_run for r in res if r.solved]
                row = {
                    "model": name,
                    "recipe": spec,
                    "n_tokens": n,
                    "texts": len(toks),
                    "cap": args.cap,
                    "solved": len(solved),
                    "median_evals_to_solve": statistics.median(solved) if solved else None,
                    "first_right": sum(first) / len(first),
                    "others_right": sum(rest) / len(rest) if rest else None,
                    "wall_s": round(time.perf_counter() - t0, 1),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
        if args.out:
            write_json_lines(args.out, rows)


if __name__ == "__main__":
    main()
