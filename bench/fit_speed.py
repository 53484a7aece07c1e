"""Fit speed: the paper's recipe one text at a time vs the batched fitter, same model, same texts, one run.

Prints one JSON line per (length, configuration) and three ratio lines per length; --out also writes them.
The paper recipe runs one text at a time for --single-cap steps (its steps/s) and batched for --cap steps;
the batched fitter keeps per-text optimiser state, so its texts take the steps they take alone, and the
one-at-a-time solve time to --cap is derived from them (a "derived" row says so). Steps to solve count
solved texts only; when the baseline leaves texts unsolved at its cap, a ratio against it is a lower bound
("ratio_is_lower_bound": true), since a larger budget cannot raise its rate above texts / its wall time.

    python bench/fit_speed.py --lengths 16 8 --texts 4 --single-cap 100 --cap 1500 --ours-cap 600 --data wiki
    python bench/fit_speed.py --lengths 32 64 128 --texts 64 --device cuda --single-cap 50 --cap 1000
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import time

import torch

from prototok.files import atomic_write_text
from prototok.fit import fit
from prototok.models import load_model
from prototok.recipes import DEFAULT_RECIPE, get_recipe

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


def texts_for(lm, n_tokens: int, count: int, data: str | None, data_seed: int = 0) -> list[list[int]]:
    """Real text truncated to exactly n_tokens; the wiki corpus when available, else built-in sentences."""
    pool: list[str] = []
    if data:
        from prototok.data import load_samples

        pool = [s.text for s in load_samples(data, count * 3, seed=data_seed)]
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


def p90(values: list[int]) -> int | None:
    """Nearest-rank 90th percentile (of 3 values, the largest)."""
    return sorted(values)[math.ceil(0.9 * len(values)) - 1] if values else None


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
        "text_steps": text_steps,
        "passes_per_s": round(passes / wall, 3),
        "text_steps_per_s": round(text_steps / wall, 3),
        "solved": len(solved),
        "solve_rate": len(solved) / len(toks),
        "median_steps_to_solve": statistics.median(solved) if solved else None,
        "p90_steps_to_solve": p90(solved),
        "mean_accuracy": round(sum(r.accuracy for r in res) / len(res), 4),
        "texts_solved_per_min": round(60 * len(solved) / wall, 3),
        "peak_memory_mb": round(peak_memory_mb(lm.device), 1),
        "cap": recipe.max_steps,
    }
    print(json.dumps(row), flush=True)
    return row


def derived_single(batched: dict, single: dict) -> dict:
    """The paper recipe one text at a time, run to the batched run's cap: the batched fitter keeps per-text
    optimiser state, so each text takes the same steps as alone (tested); its time is those steps at the
    measured one-at-a-time steps/s."""
    wall = batched["text_steps"] / single["text_steps_per_s"]
    row = {k: batched[k] for k in ("n_tokens", "texts", "recipe", "device", "solved", "solve_rate", "cap")}
    row |= {k: batched[k] for k in ("text_steps", "median_steps_to_solve", "p90_steps_to_solve", "mean_accuracy")}
    row |= {
        "config": "paper, one text at a time (derived)",
        "batch_size": 1,
        "wall_s": round(wall, 2),
        "text_steps_per_s": single["text_steps_per_s"],
        "texts_solved_per_min": round(60 * batched["solved"] / wall, 3),
        "derived": f"steps of '{batched['config']}' at the steps/s of '{single['config']}'",
    }
    print(json.dumps(row), flush=True)
    return row


def ratio(base: dict, new: dict, what: str) -> dict:
    """new's texts solved per minute over base's. When base left texts unsolved at its cap, its rate at any
    larger budget is at most texts / its wall time (as if every unsolved text were solved right at the cap),
    so the ratio against that is a lower bound."""
    out = {"ratio": what, "n_tokens": base["n_tokens"], "base": base["config"], "new": new["config"]}
    if base["solved"] == base["texts"]:
        out["texts_solved_per_min_ratio"] = round(new["texts_solved_per_min"] / base["texts_solved_per_min"], 2)
        out["ratio_is_lower_bound"] = False
    else:
        best_case = 60 * base["texts"] / base["wall_s"]
        out["texts_solved_per_min_ratio"] = round(new["texts_solved_per_min"] / best_case, 2)
        out["ratio_is_lower_bound"] = True
        if base["solved"]:  # the ratio if the cap were the budget
            out["ratio_at_base_cap"] = round(new["texts_solved_per_min"] / base["texts_solved_per_min"], 2)
    out["solve_rate"] = [base["solve_rate"], new["solve_rate"]]
    if base["median_steps_to_solve"] and new["median_steps_to_solve"] is not None:
        out["median_steps_ratio"] = round(new["median_steps_to_solve"] / base["median_steps_to_solve"], 3)
    out["text_steps_per_s_ratio"] = round(new["text_steps_per_s"] / base["text_steps_per_s"], 2)
    print(json.dumps(out), flush=True)
    return out


def write_rows(path: str, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--device", default=None)
    ap.add_argument("--lengths", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--texts", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=None, help="batched fitter's slots (default: --texts)")
    ap.add_argument("--cap", type=int, default=300, help="step cap for the paper recipe, batched")
    ap.add_argument(
        "--single-cap",
        type=int,
        default=None,
        help="step cap for the paper recipe one text at a time (default --cap); below --cap, its solve time is "
        "derived from the batched run's steps at its own measured steps/s",
    )
    ap.add_argument("--ours", nargs="+", default=[DEFAULT_RECIPE], help="recipes to compare with the paper's")
    ap.add_argument("--ours-cap", type=int, default=None, help="step cap for our recipe (default: its own)")
    ap.add_argument("--data", default=None, help="text source (e.g. wiki); default: built-in sentences")
    ap.add_argument("--data-seed", type=int, default=0, help="another draw of texts from --data")
    ap.add_argument("--out", default=None, help="also write the JSON lines here (atomically)")
    args = ap.parse_args()
    lm = load_model(args.model, args.device)
    bs = args.batch_size or args.texts
    args.single_cap = args.single_cap or args.cap
    rows = []
    for n in args.lengths:
        toks = texts_for(lm, n, args.texts, args.data, args.data_seed)
        single = run(lm, toks, get_recipe("paper", max_steps=args.single_cap), 1, "paper, one text at a time", n)
        batched = run(lm, toks, get_recipe("paper", max_steps=args.cap), bs, "paper, batched", n)
        paper = derived_single(batched, single) if args.single_cap < args.cap else single
        rows += [single, batched] + ([paper] if paper is not single else [])
        rows += [ratio(paper, batched, "batching alone")]
        for name in args.ours:
            ours = run(lm, toks, get_recipe(name, max_steps=args.ours_cap), bs, f"{name}, batched", n)
            rows += [ours, ratio(paper, ours, "ours vs paper, one at a time")]
            rows += [ratio(batched, ours, "ours vs paper, both batched")]
        if args.out:  # rewritten after each length: an interrupted run keeps the lengths it finished
            write_rows(args.out, rows)


if __name__ == "__main__":
    main()
