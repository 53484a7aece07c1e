"""The learned encoder's learning curve: held-out amortised accuracy of every kept checkpoint of a run.

`prototok encoder train --keep-every K` keeps the weights every K steps in RUN/step-NNNNNN; this measures each
(and RUN itself, the latest) on the same held-out texts (the run's hash split of its own data windows, cut to
exactly --length tokens; `--seed` picks them): one encoder pass, one decode pass, no optimisation. One JSON line
per checkpoint with the training step, the hours the run had trained by then (its train_log.jsonl), token
accuracy, texts exact, loss; `--plot` draws accuracy and the exact fraction against step and hours.

    python studies/encoder_curve.py runs/enc-lm --length 16 --texts 64 \\
        --out studies/results/encoder_curve_cpu.jsonl --plot studies/results/encoder_curve_cpu.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prototok.encoder import eval_texts, evaluate_encoder, read_meta, training_texts
from prototok.files import write_json_lines
from prototok.models import load_model


def checkpoints(run: Path) -> list[Path]:
    """Kept folders in step order, then the run's own (latest) checkpoint unless a kept one has its step."""
    kept = sorted(run.glob("step-*"))
    steps = {read_meta(k).get("step") for k in kept}
    return kept + ([run] if read_meta(run).get("step") not in steps else [])


def hours_at(run: Path) -> dict[int, float]:
    """Training wall hours at each logged step, summed over sittings (a resumed sitting's clock starts at 0)."""
    out, offset, last = {}, 0.0, 0.0
    for line in (run / "train_log.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["seconds"] < last:  # a resumed sitting restarts its clock
            offset += last
        last = row["seconds"]
        out[row["step"]] = (offset + row["seconds"]) / 3600
    return out


def plot(rows: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["accuracy"] for r in rows], marker="o", label="token accuracy")
    ax.plot(steps, [r["exact"] / r["texts"] for r in rows], marker="s", label="texts exact (fraction)")
    ax.axhline(0.9, color="grey", ls=":", lw=1)
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("held out, amortised")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8, title=title, title_fontsize=8)
    if all(r.get("train_hours") is not None for r in rows) and len(rows) > 1:
        top = ax.secondary_xaxis(
            "top",
            functions=(
                lambda s: _interp(s, steps, [r["train_hours"] for r in rows]),
                lambda h: _interp(h, [r["train_hours"] for r in rows], steps),
            ),
        )
        top.set_xticks([r["train_hours"] for r in rows], [f"{r['train_hours']:.2f}" for r in rows])
        top.set_xlabel("training hours (this run's wall)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _interp(x, xs, ys):
    import numpy as np

    return np.interp(x, xs, ys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="the training run's folder (-o of encoder train)")
    ap.add_argument("--length", type=int, default=16, help="tokens per evaluation text")
    ap.add_argument("--texts", type=int, default=64)
    ap.add_argument("--data", default="wiki", help="the training run's --data (its held-out texts are measured)")
    ap.add_argument("--samples", type=int, default=5000, help="the training run's --samples")
    ap.add_argument("--seed", type=int, default=0, help="which held-out texts")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=None, help="JSON lines (rewritten atomically after each checkpoint)")
    ap.add_argument("--plot", default=None, help="a PNG of the curve")
    args = ap.parse_args()
    trained = read_meta(args.run).get("train", {})
    lm = load_model(trained.get("model", "smollm2-135m"), args.device)
    pool = training_texts([args.data], args.samples, trained.get("seed", 0))
    hours = hours_at(args.run)
    texts = eval_texts(lm, args.run, pool, args.texts, min_len=args.length, max_len=args.length, seed=args.seed)
    rows: list[dict] = []
    for ckpt in checkpoints(args.run):
        res = evaluate_encoder(lm, ckpt, texts, fits=False)
        a = res["amortised"]
        step = res["encoder_step"]
        row = {
            "step": step,
            "train_hours": round(hours[step], 3) if step in hours else None,
            "n_tokens": args.length,
            "texts": res["texts"],
            "accuracy": round(a["accuracy"], 4),
            "exact": a["exact"],
            "loss": round(a["loss"], 4),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
        if args.out:
            write_json_lines(args.out, rows)
    if args.plot and rows:
        plot(rows, args.plot, f"{args.run.name}: {len(texts)} held-out {args.length}-token texts")
    if not rows:
        sys.exit(f"no checkpoint in {args.run}")


if __name__ == "__main__":
    main()
