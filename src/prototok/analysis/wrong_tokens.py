"""Which tokens a capacity walk's unsolved rows still get wrong: position, reference token, one-pass output.

A row below 100% accuracy names its stored (e, m); decoding that file as its method decodes it (one forward
pass, checked against the model: decode.decode_tokens) and comparing with the text's own prefix (rebuilt from
the source, data seed and minimum length the walk used) shows where the solution fails: at long lengths often
output 0 alone, the one that e alone decides.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..decode import decode_tokens
from ..experiments.texts import EXPERIMENT_MIN_CHARS, load, prefixes
from ..models import LoadedModel
from ..protofile import ProtoTokens
from ..store import Store


def wrong_tokens(
    lm: LoadedModel, store: Store, rows: list[dict], tokens: dict[tuple[int, int], list[int]]
) -> list[dict]:
    """Per row below 1.0, by length then sample: {sample, length, accuracy, wrong}, wrong being its wrong
    positions as (position, reference, output) token strings. tokens: (sample, length) -> the reference token
    ids. Each proto-token file is decoded once."""
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


def walk_wrong_tokens(
    lm: LoadedModel,
    store: Store,
    spec: str,
    recipe: str,
    *,
    samples: int,
    data_seed: int = 0,
    min_chars: int = EXPERIMENT_MIN_CHARS,
    min_length: int = 0,
    seed: int = 0,
) -> Iterator[dict]:
    """wrong_tokens of one source's walk: its rows under `recipe` (the stored key) and `seed`, of the first
    `samples` samples and at least `min_length` tokens, each line with its source key first. spec, samples,
    data_seed and min_chars must be those the walk was run with (they rebuild its texts)."""
    source, loaded = load(spec, samples, lm, data_seed=data_seed, min_chars=min_chars)
    rows = [
        r
        for r in store.rows(source=source, recipe=recipe, seed=seed)
        if r["length"] >= min_length and r["sample"] < samples
    ]
    lengths = sorted({r["length"] for r in rows})
    tokens = {(p.sample, n): t for p in prefixes(lm, loaded, lengths, h_lm=False) for n, t in p.tokens.items()}
    for line in wrong_tokens(lm, store, rows, tokens):
        yield {"source": source, **line}
