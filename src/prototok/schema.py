"""One layout for results as JSON, defined once: what `encode --json` and `decode --json` print, the run file an
`encode --db` keeps in the results store, and the store's rows as `prototok export` writes them.

A document (one JSON object, as lm-evaluation-harness writes one per run, with its config and versions):

    schema       SCHEMA, the version of this layout
    command      "encode" or "decode"
    created      when it was made: ISO 8601, UTC, milliseconds ("2026-12-01T09:30:12.345Z")
    versions     {"prototok", "torch", "transformers", "python"}
    model, model_fingerprint, tokenizer_fingerprint, layout, recipe, seed, sharing
                 what the vectors were made with, named as the store's columns name them
    file         the proto-token file written (encode) or read (decode)
    config       the command's settings (encode: device, dtype, batch_size, share, encoder, refine, ...)
    texts        one object per text, in file order (below)
    db, proto_path, rows_added
                 encode --db only: the results store, its copy of the file, the rows it added

A text carries the store's column names wherever the store holds the same thing, so a document's text and an
exported row read alike:

    index        the text's place in the file (the store's proto_index)
    length       its tokens (the file's lengths[index])
    token_ids    its token ids: encode, the text's; decode, the ones written back
    text         encode: the text encoded; decode: the text written back
    text_sha256  the sha256 of the text the file was made for
    accuracy     token accuracy of the one pass: encode, the fit's; decode, against --reference (null without)
    solved       encode: 1 if the one pass writes the text exactly, else 0
    steps, loss, fit_seconds
                 encode: the fit's optimiser steps, final loss (nats/token) and wall time

A non-finite number is written as null. The store keeps `created` as unix seconds (a REAL column, as every
database written so far has it); exported rows and documents give ISO 8601 (export_row).
"""

from __future__ import annotations

import math
import platform
import time
from datetime import UTC, datetime
from importlib import metadata

from .protofile import ProtoTokens
from .version import __version__

SCHEMA = 1
TIME_COLUMNS = ("created",)  # stored as unix seconds; ISO 8601 on the way out


def iso_time(seconds: float | None = None) -> str | None:
    """Unix seconds (default: now) as ISO 8601 in UTC with milliseconds and a Z; None stays None."""
    if seconds is None:
        seconds = time.time()
    elif not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return None
    stamp = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def export_row(row: dict) -> dict:
    """A stored row as it leaves the store (export, JSON): every key kept, times as ISO 8601."""
    return {k: (iso_time(v) if k in TIME_COLUMNS and v is not None else v) for k, v in row.items()}


def versions() -> dict[str, str | None]:
    """What made a result, as lm-evaluation-harness records it: prototok, torch, transformers, Python."""
    out: dict[str, str | None] = {"prototok": __version__}
    for name in ("torch", "transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def sharing_of(proto: ProtoTokens) -> str:
    """The store's `sharing` value for a file's texts: "none", or "m/T" / "e/T" when its T texts share one."""
    share = proto.extra.get("share", "none")
    return "none" if share in ("none", None) else f"{share}/{len(proto)}"


def _number(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None


def encode_texts(proto: ProtoTokens, texts: list[str], token_ids: list[list[int]]) -> list[dict]:
    """The text objects of an encode: what the fit reached for each text of `proto`."""
    seconds = proto.extra.get("seconds") or [None] * len(proto)
    loss = proto.extra.get("loss") or [None] * len(proto)
    return [
        {
            "index": i,
            "length": proto.lengths[i],
            "token_ids": list(token_ids[i]),
            "text": texts[i],
            "text_sha256": proto.text_sha256[i],
            "accuracy": _number(proto.accuracy[i]),
            "solved": int(proto.accuracy[i] >= 1.0),
            "steps": proto.steps[i],
            "loss": _number(loss[i]),
            "fit_seconds": _number(seconds[i]),
        }
        for i in range(len(proto))
    ]


def decode_texts(proto: ProtoTokens, decoded: list) -> list[dict]:
    """The text objects of a decode: `decoded` are decode.Decoded (text, tokens, accuracy against a reference)."""
    return [
        {
            "index": i,
            "length": proto.lengths[i],
            "token_ids": list(d.tokens),
            "text": d.text,
            "text_sha256": proto.text_sha256[i],
            "accuracy": _number(d.accuracy),
        }
        for i, d in enumerate(decoded)
    ]


def document(command: str, model: str, proto: ProtoTokens, texts: list[dict], *, file: str, config: dict) -> dict:
    """One result document (the module's docstring): `model` is the name the command loaded, `texts` the
    objects of encode_texts or decode_texts."""
    return {
        "schema": SCHEMA,
        "command": command,
        "created": iso_time(),
        "versions": versions(),
        "model": model,
        "model_fingerprint": proto.model_fingerprint,
        "tokenizer_fingerprint": proto.tokenizer_fingerprint,
        "layout": proto.layout,
        "recipe": proto.recipe,
        "precision": proto.precision,
        "seed": proto.seed,
        "sharing": sharing_of(proto),
        "file": file,
        "config": config,
        "texts": texts,
    }
