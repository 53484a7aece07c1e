"""An encode's texts as rows of the results store (`prototok encode --db`), keyed as the experiments key theirs.

The store stays self-contained: the proto-token file is copied into its folder (`<db stem>.protos/encode/`), as
the experiments' files are, with the run's JSON document (schema.py) beside it, and each row points at its text
in that copy. A row's key is (experiment "encode", model, source, sample, length, seed, layout, sharing, recipe):
the source names the call's texts by content (`encode:` and a digest of their sha256s, in order) and the sample
is a text's place among them, so the same texts encoded again with the same settings add nothing (the rows and
the copy are kept as they were), and any other text or setting is a new key.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from .decode import decode_tokens
from .experiments.texts import tokens_sha256
from .files import atomic_write_text, check_output_dir, check_output_file
from .models import LoadedModel
from .protofile import ProtoTokens
from .schema import sharing_of
from .store import Row, Store, proto_dir_for
from .version import __version__

EXPERIMENT = "encode"  # the `experiment` column of an encode's rows


def check_db(db: str | Path) -> None:
    """Before the model loads: --db and its proto-token folder can be written, and the database, if there is one,
    is a results store (opened read-only: nothing is created yet)."""
    check_output_file(db, "--db")
    check_output_dir(proto_dir_for(db), "--db's proto-token folder", writable=False)
    Store(db, readonly=True).close()


def check_db_model(db: str | Path, model: str, lm: LoadedModel) -> None:
    """Before fitting: a model name in the store must keep meaning the same weights (Store.check_model)."""
    with Store(db, readonly=True) as store:
        store.check_model(model, lm.fingerprint)


def source_of(proto: ProtoTokens) -> str:
    """The `source` of a call's texts: "encode:" and 16 hex digits of the sha256 over their sha256s, in order."""
    return f"{EXPERIMENT}:" + hashlib.sha256(",".join(proto.text_sha256).encode()).hexdigest()[:16]


def keys(proto: ProtoTokens, model: str) -> list[tuple]:
    """Each text's row key, in store.KEY order."""
    source, sharing = source_of(proto), sharing_of(proto)
    return [
        (EXPERIMENT, model, source, i, n, proto.seed, proto.layout, sharing, proto.recipe)
        for i, n in enumerate(proto.lengths)
    ]


def add_encoded(
    db: str | Path,
    proto: ProtoTokens,
    lm: LoadedModel,
    token_ids: list[list[int]],
    *,
    model: str,
    origins: list[str],
    batch_size: int,
    document: dict,
) -> dict:
    """Append an encode's texts to the store at `db`: its copy of the file, decoded back once (timed, as the
    experiments' are), then one row per text in one transaction, then the run's document beside the copy.
    `model` is the name given to --model, `origins` where each text came from (the rows' `doc`). Returns the
    document with db, proto_path (the copy, relative to the database's folder) and rows_added set."""
    row_keys = keys(proto, model)
    digest = hashlib.sha256(repr(row_keys).encode()).hexdigest()[:20]
    with Store(db) as store:
        store.check_model(model, lm.fingerprint)
        rel = f"{store.proto_dir.name}/{EXPERIMENT}/{digest}.safetensors"
        document = document | {"db": str(db), "proto_path": rel, "rows_added": 0}
        done = store.done(experiment=EXPERIMENT, source=row_keys[0][2])
        if all(k in done for k in row_keys):
            return document
        proto.save(store.path.parent / rel)  # before the rows: a row never points at nothing
        t0 = time.perf_counter()
        with torch.no_grad():
            decoded = decode_tokens(lm, proto)
        seconds = time.perf_counter() - t0
        seconds_per_text = proto.extra.get("seconds") or [0.0] * len(proto)
        loss = proto.extra.get("loss") or [0.0] * len(proto)
        fitted_at_once = len(proto) if sharing_of(proto) != "none" else min(batch_size, len(proto))
        rows = [
            Row(
                *key,
                model_fingerprint=lm.fingerprint,
                tokenizer_fingerprint=lm.tokenizer_fingerprint,
                doc=origins[i],
                offset=0,
                tokens_sha256=tokens_sha256(token_ids[i]),
                tokens=len(token_ids[i]),  # the whole text: its length is its token count
                accuracy=proto.accuracy[i],
                solved=int(proto.accuracy[i] >= 1.0),
                steps=proto.steps[i],
                loss=loss[i],
                fit_seconds=seconds_per_text[i],
                batch_size=fitted_at_once,
                device=str(lm.device),
                decode_seconds=seconds,
                decode_tokens=sum(proto.lengths),
                decode_accuracy=sum(a == b for a, b in zip(decoded[i], token_ids[i])) / len(token_ids[i]),
                proto_path=rel,
                proto_index=i,
                version=__version__,
            )
            for i, key in enumerate(row_keys)
        ]
        document["rows_added"] = store.add(rows)
        atomic_write_text(store.path.parent / rel.replace(".safetensors", ".json"), json.dumps(document, indent=2))
    return document
