"""A learned encoder as a warm start: the default recipe from the encoder's output against a cold fit, in one run.

Per length, the same held-out texts (the training run's hash split of its own data windows; `--seed` picks
among them and seeds both fits) are fitted twice with the same recipe and cap: warm (from the encoder's e, m; a
text longer than the encoder reads starts from its reading of the first max_len tokens) and cold (the recipe's
random init). One JSON line per length: texts solved each way, median evaluations (forward+backward passes; an
unsolved text counts what it ran, about the cap), wall, and warm over cold for both. Also the amortised token
accuracy of the encoder's output on the whole text.

    python bench/encoder_warm.py runs/enc-lm --lengths 16 32 64 --texts 8 8 4 --cap 300 600 1000 \\
        --out bench/results/encoder_warm_cpu.jsonl
"""

from __future__ import annotations

import argparse
import time

from common import RunLog, model_options, out_option, ratio
from prototok.encoder import eval_texts, evaluate_encoder, read_meta, training_texts
from prototok.models import load_model
from prototok.recipes import DEFAULT_RECIPE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt", help="encoder checkpoint folder")
    model_options(ap)
    ap.set_defaults(model=None)  # the model the encoder was trained for, unless --model says otherwise
    ap.add_argument("--data", default="wiki", help="the training run's --data (its held-out texts are measured)")
    ap.add_argument("--samples", type=int, default=5000, help="the training run's --samples")
    ap.add_argument("--lengths", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--texts", type=int, nargs="+", default=[8, 4], help="texts per length (one per length)")
    ap.add_argument("--cap", type=int, nargs="+", default=[600, 1000], help="evaluations per text, per length")
    ap.add_argument("--recipe", default=DEFAULT_RECIPE)
    ap.add_argument("--seed", type=int, default=0, help="which held-out texts, and both fits' init")
    out_option(ap, "after each length")
    args = ap.parse_args()
    if not len(args.lengths) == len(args.texts) == len(args.cap):
        raise SystemExit("--lengths, --texts and --cap take one value per length")
    meta = read_meta(args.ckpt)
    trained = meta.get("train", {})
    lm = load_model(args.model or trained.get("model", "smollm2-135m"), args.device)
    pool = training_texts([args.data], args.samples, trained.get("seed", 0))
    log = RunLog(args.out, lm.device)
    for n, count, cap in zip(args.lengths, args.texts, args.cap):
        texts = eval_texts(lm, args.ckpt, pool, count, heldout=True, min_len=n, max_len=n, seed=args.seed)
        t0 = time.perf_counter()
        res = evaluate_encoder(
            lm, args.ckpt, texts, recipe=args.recipe, max_steps=cap, seed=args.seed, batch_size=len(texts)
        )
        wall = time.perf_counter() - t0
        f = res["fits"]
        # one batch per phase: a text's seconds are the time it spent in its batch, the longest is the phase's wall
        warm_s = max(r["warm_seconds"] for r in res["per_text"])
        cold_s = max(r["cold_seconds"] for r in res["per_text"])
        log.add(
            {
                "encoder_step": res["encoder_step"],
                "n_tokens": n,
                "texts": len(texts),
                "data": args.data,
                "seed": args.seed,
                "recipe": f["recipe"],
                "cap": cap,
                "amortised_accuracy": round(res["amortised"]["accuracy"], 4),
                "amortised_exact": res["amortised"]["exact"],
                "warm_solved": f["warm"]["solved"],
                "cold_solved": f["cold"]["solved"],
                "warm_evaluations": [r["warm_evaluations"] for r in res["per_text"]],
                "cold_evaluations": [r["cold_evaluations"] for r in res["per_text"]],
                "warm_median_evaluations": f["warm"]["median_evaluations"],
                "cold_median_evaluations": f["cold"]["median_evaluations"],
                "warm_over_cold_median_evaluations": ratio(
                    f["warm"]["median_evaluations"], f["cold"]["median_evaluations"], 3
                ),
                "warm_s": round(warm_s, 1),
                "cold_s": round(cold_s, 1),
                "warm_over_cold_wall": ratio(warm_s, cold_s, 3),
                "wall_s": round(wall, 1),
            }
        )


if __name__ == "__main__":
    main()
