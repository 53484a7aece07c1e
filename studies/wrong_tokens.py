"""Which tokens a capacity walk's unsolved rows still get wrong: position, reference token, one-pass output.

Decodes each stored (e, m) below 100% accuracy as its method decodes it and compares it with the text's own
prefix, rebuilt from the source, data seed and minimum length the walk used (prototok.analysis.wrong_tokens).
One JSON line per unsolved row: source, sample, length, accuracy and its wrong positions as (position,
reference, output) token strings. Of the default recipe's walk failures one token short at 64 and 90 tokens,
most had only output 0 wrong, the one that e alone decides (the attention sink on SmolLM2).

    python studies/wrong_tokens.py --db results/capacity_walks.db \
        --recipe "fast-lbfgs-keep(max_steps=1500)+prefix-warm" --data austen random wiki --min-length 64 \
        > studies/results/wrong_tokens_cpu.jsonl
"""

from __future__ import annotations

import argparse
import json

from prototok.analysis.wrong_tokens import walk_wrong_tokens
from prototok.models import load_model
from prototok.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="results/capacity_walks.db")
    ap.add_argument("--recipe", required=True, help="the walk's stored recipe key")
    ap.add_argument("--data", nargs="+", default=["wiki"])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--data-seed", type=int, default=23)
    ap.add_argument("--min-chars", type=int, default=1500)
    ap.add_argument("--min-length", type=int, default=0)
    args = ap.parse_args()
    lm = load_model(args.model, "cpu")
    store = Store(args.db, readonly=True)
    for data in args.data:
        lines = walk_wrong_tokens(
            lm,
            store,
            data,
            args.recipe,
            samples=args.samples,
            data_seed=args.data_seed,
            min_chars=args.min_chars,
            min_length=args.min_length,
        )
        for line in lines:
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
