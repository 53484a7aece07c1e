"""Which tokens a capacity walk's unsolved rows still get wrong: position, reference token, one-pass output.

Decodes each stored (e, m) below 100% accuracy with one forward pass and compares it to the text's own prefix
(rebuilt from the source, data seed and minimum length the walk used). Issue 16 (README, Long texts): of the
six walk failures one token short at 64 and 90 tokens, four had only output 0 wrong, the one that e alone
decides (the attention sink on SmolLM2). One JSON line per unsolved row.

    python bench/wrong_tokens.py --db results/issue16.db --recipe "fast-lbfgs-keep(max_steps=1500)+prefix-warm" \
        --data austen random wiki --min-length 64
"""

from __future__ import annotations

import argparse
import json

from prototok.decode import decode_tokens
from prototok.experiments.texts import load, prefixes
from prototok.models import LoadedModel, load_model
from prototok.protofile import ProtoTokens
from prototok.store import Store


def wrong_tokens(lm: LoadedModel, store: Store, rows: list[dict], tokens: dict[tuple[int, int], list[int]]):
    """Per row (below 1.0): its wrong positions as (position, reference, output) token strings.
    tokens: (sample, length) -> the reference token ids. Each proto-token file is decoded once, as its method
    decodes it and checked against the model (decode.decode_tokens)."""
    decoded: dict[str, list[list[int]]] = {}
    dec = lm.tokenizer.decode
    out = []
    for r in sorted(rows, key=lambda r: (r["length"], r["sample"])):
        if r["accuracy"] >= 1.0:
            continue
        ref = tokens[(r["sample"], r["length"])]
        if r["proto_path"] not in decoded:
            decoded[r["proto_path"]] = decode_tokens(lm, ProtoTokens.load(store.proto_file(r["proto_path"])))
        got = decoded[r["proto_path"]][r["proto_index"]]
        wrong = [(i, dec([a]), dec([b])) for i, (a, b) in enumerate(zip(ref, got, strict=True)) if a != b]
        out.append({"sample": r["sample"], "length": r["length"], "accuracy": r["accuracy"], "wrong": wrong})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
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
        source, samples = load(data, args.samples, lm, data_seed=args.data_seed, min_chars=args.min_chars)
        rows = [
            r
            for r in store.rows(source=source, recipe=args.recipe, seed=0)
            if r["length"] >= args.min_length and r["sample"] < args.samples
        ]
        lengths = sorted({r["length"] for r in rows})
        tokens = {(p.sample, n): t for p in prefixes(lm, samples, lengths, h_lm=False) for n, t in p.tokens.items()}
        for line in wrong_tokens(lm, store, rows, tokens):
            print(json.dumps({"source": source, **line}), flush=True)


if __name__ == "__main__":
    main()
