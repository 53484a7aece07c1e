"""Fit speed: the paper's recipe one text at a time vs the batched fitter, same model, same texts, one run.

Prints one JSON line per (length, configuration) and one ratio line per length; --out also writes them.
Runs that hit the step cap are reported honestly: steps-to-solve counts only solved texts, and when the
paper recipe solves nothing within the cap its solve time is bounded below by cap / (steps/s), so the
ratio is then a lower bound ("ratio_is_lower_bound": true).

    python bench/fit_speed.py --lengths 8 16 --texts 4 --cap 300            # CPU
    python bench/fit_speed.py --lengths 32 64 128 --texts 64 --device cuda  # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

from prototok.fit import fit
from prototok.models import load_model
from prototok.recipes import get_recipe

SENTENCES = [
    "Paris is the capital and most populous city of France, on the river Seine.",
    "The quick brown fox jumps over the lazy dog near the old river bank today.",
    "Photosynthesis converts light energy into chemical energy stored in sugar molecules.",
    "It is a truth universally acknowledged that a single man in possession of a good fortune must be in want.",
    "The mitochondrion is an organelle found in the cells of most eukaryotic organisms.",
    "Mount Everest is the highest mountain above sea level, in the Himalayas of Asia.",
    "Jazz originated in the African-American communities of New Orleans in the late nineteenth century.",
    "A prime number is a natural number greater than one that has no positive divisors other than one and itself.",
]


def texts_for(lm, n_tokens: int, count: int, data: str | None) -> list[list[int]]:
    """Real text truncated to exactly n_tokens; the wiki corpus when available, else built-in sentences."""
    pool: list[str] = []
    if data:
        from prototok.data import load_samples

        pool = [s.text for s in load_samples(data, count * 3, seed=0)]
    pool += SENTENCES
    out = []
    for t in pool:
        ids = lm.tokenizer(t, add_special_tokens=False)["input_ids"]
        if len(ids) >= n_tokens:
            out.append(ids[:n_tokens])
        if len(out) == count:
            return out
    sys.exit(f"only {len(out)} texts of >= {n_tokens} tokens available; pass --data")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS, KiB on Linux


def run(lm, toks, recipe, batch_size: int, name: str, n: int) -> dict:
    passes = 0

    def count(_):
        nonlocal passes
        passes += 1

    if lm.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(lm.device)
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = fit(lm, toks, recipe=recipe, batch_size=batch_size, progress=count)
    wall = time.perf_counter() - t0
    solved = [r.steps for r in res if r.solved]
    text_steps = sum(r.steps_run for r in res)  # per-text passes: the work, whatever the batch size
    row = {
        "config": name,
        "n_tokens": n,
        "texts": len(toks),
        "recipe": recipe.name,
        "batch_size": batch_size,
        "device": str(lm.device),
        "wall_s": round(wall, 2),
        "passes": passes,
        "passes_per_s": round(passes / wall, 3),
        "text_steps_per_s": round(text_steps / wall, 3),
        "solved": len(solved),
        "solve_rate": len(solved) / len(toks),
        "median_steps_to_solve": statistics.median(solved) if solved else None,
        "p90_steps_to_solve": sorted(solved)[int(0.9 * (len(solved) - 1))] if solved else None,
        "mean_accuracy": round(sum(r.accuracy for r in res) / len(res), 4),
        "texts_solved_per_min": round(60 * len(solved) / wall, 3),
        "peak_memory_mb": round(peak_memory_mb(lm.device), 1),
        "cap": recipe.max_steps,
    }
    print(json.dumps(row), flush=True)
    return row


def ratio(base: dict, new: dict, what: str) -> dict:
    out = {"ratio": what, "n_tokens": base["n_tokens"], "base": base["config"], "new": new["config"]}
    if base["solved"]:
        out["texts_solved_per_min_ratio"] = round(new["texts_solved_per_min"] / base["texts_solved_per_min"], 2)
        out["ratio_is_lower_bound"] = False
    else:  # the baseline solved nothing within the cap: each of its texts needs more than cap steps
        bound = base["texts"] * base["cap"] / base["text_steps_per_s"] / 60  # minutes, lower bound
        out["texts_solved_per_min_ratio"] = round(new["texts_solved_per_min"] * bound / base["texts"], 2)
        out["ratio_is_lower_bound"] = True
    if base["median_steps_to_solve"] and new["median_steps_to_solve"] is not None:
        out["median_steps_ratio"] = round(new["median_steps_to_solve"] / base["median_steps_to_solve"], 3)
    out["passes_per_s_ratio"] = round(new["text_steps_per_s"] / base["text_steps_per_s"], 2)
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--device", default=None)
    ap.add_argument("--lengths", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--texts", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=None, help="batched fitter's slots (default: --texts)")
    ap.add_argument("--cap", type=int, default=300, help="step cap for the paper recipe runs")
    ap.add_argument("--ours", default="fast", help="the recipe to compare with the paper's")
    ap.add_argument("--data", default=None, help="text source (e.g. wiki); default: built-in sentences")
    ap.add_argument("--out", default=None, help="also write the JSON lines here (atomically)")
    args = ap.parse_args()
    lm = load_model(args.model, args.device)
    bs = args.batch_size or args.texts
    rows = []
    for n in args.lengths:
        toks = texts_for(lm, n, args.texts, args.data)
        paper = get_recipe("paper", max_steps=args.cap)
        base = run(lm, toks, paper, 1, "paper, one text at a time", n)
        batched = run(lm, toks, paper, bs, "paper, batched", n)
        ours = run(lm, toks, get_recipe(args.ours), bs, f"{args.ours}, batched", n)
        rows += [base, batched, ours, ratio(base, batched, "batching alone"), ratio(base, ours, "ours vs paper")]
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
