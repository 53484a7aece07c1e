"""Fit speed: the paper's recipe one text at a time vs the batched fitter, same model, same texts, one run.

Prints one JSON line per (length, configuration) and three ratio lines per length (two more per extra --ours
recipe); --out also writes them. The paper recipe runs one text at a time for --single-cap steps (its steps/s)
and batched for --cap steps; the batched fitter keeps per-text optimiser state, so its texts take the steps they
take alone, and the one-at-a-time solve time to --cap is derived from them (a "derived" row says so). Steps to
solve count solved texts only; when the baseline leaves texts unsolved at its cap, a ratio against it is a lower
bound ("ratio_is_lower_bound": true), since a larger budget cannot raise its rate above texts / its wall time.

    python bench/fit_speed.py --lengths 16 8 --texts 4 --single-cap 100 --cap 1500 --ours-cap 600 --data wiki
    python bench/fit_speed.py --lengths 32 64 128 --texts 64 --device cuda --single-cap 50 --cap 1000
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from common import RunLog, model_options, out_option, p90, ratio, texts_for
from prototok.fit import fit
from prototok.models import load_model
from prototok.recipes import DEFAULT_RECIPE, get_recipe


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: the peak since the run began (reset per run); CPU: the process's peak RSS so far (never reset)."""
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
    return {
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
    return row


def compare(base: dict, new: dict, what: str) -> dict:
    """new's figures over base's. Texts solved per minute: when base left texts unsolved at its cap, its rate at
    any larger budget is at most texts / its wall time (as if every unsolved text were solved right at the cap),
    so the ratio against that is a lower bound. Peak memory only on CUDA, where each run's peak is its own."""
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
    out["text_steps_ratio"] = ratio(new["text_steps"], base["text_steps"], 3)
    out["wall_s_ratio"] = ratio(new["wall_s"], base["wall_s"], 3)
    if new["device"].startswith("cuda"):
        out["peak_memory_mb_ratio"] = ratio(new.get("peak_memory_mb"), base.get("peak_memory_mb"), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_options(ap)
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
    out_option(ap)
    args = ap.parse_args()
    lm = load_model(args.model, args.device)
    log = RunLog(args.out, lm.device)
    bs = args.batch_size or args.texts
    args.single_cap = args.single_cap or args.cap
    for n in args.lengths:
        toks = texts_for(lm, n, args.texts, args.data, args.data_seed)
        single = log.add(
            run(lm, toks, get_recipe("paper", max_steps=args.single_cap), 1, "paper, one text at a time", n)
        )
        batched = log.add(run(lm, toks, get_recipe("paper", max_steps=args.cap), bs, "paper, batched", n))
        paper = log.add(derived_single(batched, single)) if args.single_cap < args.cap else single
        log.add(compare(paper, batched, "batching alone"))
        for name in args.ours:
            ours = log.add(run(lm, toks, get_recipe(name, max_steps=args.ours_cap), bs, f"{name}, batched", n))
            log.add(compare(paper, ours, "ours vs paper, one at a time"))
            log.add(compare(batched, ours, "ours vs paper, both batched"))


if __name__ == "__main__":
    main()
