"""Precision of a fit: fp32 against low-precision schemes, side by side in one run, on the same held-out texts.

Each setting fits the same texts (per length, one batch, same seed and cap) and prints one JSON line: texts
exact, the evaluations each took (one forward+backward of one text), wall time, and its wall and evaluations as
a ratio of the fp32 row of the same run. Every solution is then decoded in plain fp32 and with bf16 weights, so
the same rows answer whether a solution found in one precision decodes in the other.

Settings (`--settings`):
- fp32: float32 weights, plain float32 compute, the default recipe (the baseline of every ratio).
- bf16-weights: bfloat16 weights (`--dtype bfloat16`), the default recipe as asked.
- bf16-autocast: float32 weights under bf16 autocast (what CUDA's default was), the default recipe as asked.
- adamw-fp32 / adamw-bf16: `fast-e50` (AdamW only) in fp32 / under bf16 autocast.
- hybrid: the default recipe's AdamW phase (its first `lbfgs_after` steps, as `fast-e50`) under bf16 autocast,
  then its L-BFGS in fp32 from there (warm start).

    python bench/precision.py --lengths 32 64 --texts 8 4 --cap 600 1000 --data wiki --data-seed 41 \\
        --out bench/results/precision_cpu.jsonl
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from common import RunLog, model_options, out_option, ratio
from prototok.experiments.texts import exact_length_texts
from prototok.fit import fit
from prototok.layouts import get_layout
from prototok.models import load_model
from prototok.onepass import decode_vectors
from prototok.recipes import DEFAULT_RECIPE, get_recipe

SETTINGS = ("fp32", "bf16-weights", "bf16-autocast", "adamw-fp32", "adamw-bf16", "hybrid")
LAYOUT = get_layout("e m^(N-1)")


def run_setting(name: str, models: dict, toks: list[list[int]], cap: int, seed: int):
    """Fit under one setting; returns the per-text FitResults and the evaluations each took in total."""
    default = get_recipe(DEFAULT_RECIPE, max_steps=cap)
    if name in ("fp32", "bf16-weights", "bf16-autocast"):
        lm = {"fp32": models["fp32"], "bf16-weights": models["bf16"], "bf16-autocast": models["autocast"]}[name]
        res = fit(lm, toks, layout=LAYOUT, recipe=default, seed=seed, batch_size=len(toks), precision="model")
        return res, [r.steps_run for r in res]
    if name.startswith("adamw"):
        lm = models["fp32"] if name == "adamw-fp32" else models["autocast"]
        rec = get_recipe("fast-e50", max_steps=cap)
        res = fit(lm, toks, layout=LAYOUT, recipe=rec, seed=seed, batch_size=len(toks), precision="model")
        return res, [r.steps_run for r in res]
    # hybrid: the same AdamW phase the default recipe runs (fast-e50's settings), in bf16, then L-BFGS in fp32
    k = min(default.lbfgs_after, cap)
    first = get_recipe("fast-e50", max_steps=k)
    res1 = fit(models["autocast"], toks, layout=LAYOUT, recipe=first, seed=seed, batch_size=len(toks))
    warm = [None if r.solved else (r.e, r.m) for r in res1]
    todo = [i for i, w in enumerate(warm) if w is not None]
    res = list(res1)
    if todo:
        rec = replace(default, max_steps=cap - k)
        res2 = fit(
            models["fp32"],
            [toks[i] for i in todo],
            layout=LAYOUT,
            recipe=rec,
            seed=seed,
            batch_size=len(todo),
            warm_start=[warm[i] for i in todo],
            init_ids=todo,
        )
        for i, r in zip(todo, res2):
            res[i] = r
    evals = [r.steps_run + (res1[i].steps_run if warm[i] is not None else 0) for i, r in enumerate(res)]
    return res, evals


def decoded_accuracy(lm, res, toks) -> list[float]:
    e = torch.stack([r.e.reshape(-1) for r in res])
    m = torch.stack([r.m.reshape(-1) for r in res])
    out = decode_vectors(lm, e, m, LAYOUT, [len(t) for t in toks])
    return [round(sum(a == b for a, b in zip(o, t)) / len(t), 4) for o, t in zip(out, toks)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_options(ap)
    ap.add_argument("--lengths", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--texts", type=int, nargs="+", default=[8, 4], help="texts per length (one per length)")
    ap.add_argument("--cap", type=int, nargs="+", default=[600, 1000], help="evaluations per text, per length")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    ap.add_argument("--data", default="wiki")
    ap.add_argument("--data-seed", type=int, default=41)
    ap.add_argument("--seed", type=int, default=0)
    out_option(ap, "after each row")
    args = ap.parse_args()
    if not len(args.lengths) == len(args.texts) == len(args.cap):
        raise SystemExit("--lengths, --texts and --cap take one value per length")
    fp32 = load_model(args.model, args.device, "float32")
    models = {
        "fp32": fp32,
        "autocast": replace(fp32, autocast_dtype=torch.bfloat16),
        "bf16": load_model(args.model, args.device, "bfloat16"),
    }
    log = RunLog(args.out, fp32.device)
    for n, count, cap in zip(args.lengths, args.texts, args.cap):
        toks = exact_length_texts(fp32, n, count, args.data, data_seed=args.data_seed)
        base = None
        for name in args.settings:
            t0 = time.perf_counter()
            res, evals = run_setting(name, models, toks, cap, args.seed)
            wall = time.perf_counter() - t0
            solved = [ev for r, ev in zip(res, evals) if r.solved]
            row = {
                "setting": name,
                "n_tokens": n,
                "texts": len(toks),
                "data": args.data,
                "data_seed": args.data_seed,
                "cap": cap,
                "exact": len(solved),
                "evals": evals,
                "median_evals_exact": statistics.median(solved) if solved else None,
                "accuracy": [round(r.accuracy, 4) for r in res],
                "decoded_fp32": decoded_accuracy(models["fp32"], res, toks),
                "decoded_bf16_weights": decoded_accuracy(models["bf16"], res, toks),
                "wall_s": round(wall, 1),
            }
            if name == "fp32":
                base = row
            if base is not None:  # the same texts, cap and seed in fp32, measured in this run
                row["wall_s_ratio_vs_fp32"] = ratio(wall, base["wall_s"], 3)
                row["evals_ratio_vs_fp32"] = ratio(sum(evals), sum(base["evals"]), 3)
            log.add(row)


if __name__ == "__main__":
    main()
