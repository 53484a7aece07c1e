"""Documents from a Hugging Face Hub dataset (`hf:NAME[:CONFIG][:SPLIT][#FIELD]`), one per row, through the
`datasets` library. (prototok.hub is about model repositories: downloads and pushes of prototok's own files.)"""

from __future__ import annotations

import os
import re

from ..errors import PrototokError, first_line
from .sample import Documents

SPLIT_NAMES = ("train", "test", "validation", "valid", "dev", "eval")
_SLICE = re.compile(r"(?P<split>[^\[\]]+)\[:(?P<rows>\d+)\]")


def parse_hub(arg: str) -> tuple[str, str | None, str, str, int | None]:
    """`NAME[:CONFIG][:SPLIT][#FIELD]` -> (name, config, split, field, rows). Two parts are NAME:SPLIT when the
    second is a usual split name (train, test, validation, ...) or a slice, else NAME:CONFIG (split train).
    SPLIT[:N] (e.g. train[:20000]) streams: only the first N rows are read, nothing else is downloaded."""
    arg, _, field = arg.partition("#")
    parts = re.split(r":(?![^\[]*\])", arg)  # the colon of a slice train[:N] is not a separator
    if not parts[0] or len(parts) > 3 or any(not x for x in parts[1:]):
        raise PrototokError(f"hf:{arg}: expected hf:NAME[:CONFIG][:SPLIT][#FIELD]")
    name, config, split = parts[0], None, "train"
    if len(parts) == 3:
        config, split = parts[1], parts[2]
    elif len(parts) == 2:
        if parts[1] in SPLIT_NAMES or _SLICE.fullmatch(parts[1]):
            split = parts[1]
        else:
            config = parts[1]
    rows = None
    if m := _SLICE.fullmatch(split):
        split, rows = m["split"], int(m["rows"])
    return name, config, split, field or "text", rows


def from_hub(arg: str) -> Documents:
    """`NAME[:CONFIG][:SPLIT][#FIELD]` via the `datasets` library (split defaults to train, the column to text);
    one document per row. A split sliced as `train[:N]` streams the first N rows (datasets streaming=True):
    large sets are not downloaded whole."""
    name, config, split, field, rows = parse_hub(arg)
    try:
        import datasets
    except ImportError:
        raise PrototokError(f"hf:{arg} needs the datasets library: pip install 'prototok[hf]'") from None
    where = f"'{name}'" + (f" config '{config}'" if config else "") + f" split '{split}'"
    named = (name,) if config is None else (name, config)
    try:
        if rows is None:
            ds = datasets.load_dataset(*named, split=split)
            columns = ds.column_names
            values = ds[field] if field in columns else None
        else:
            ds = datasets.load_dataset(*named, split=split, streaming=True)
            head = list(ds.take(rows))
            columns = list(head[0]) if head else [field]
            values = [r.get(field) for r in head] if field in columns else None
    except Exception as err:  # offline, unknown name, bad config or split: datasets raises many types
        hint = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") else ""
        raise PrototokError(f"cannot load Hub dataset {where}{hint}: {first_line(err)}") from None
    if values is None:
        raise PrototokError(
            f"Hub dataset {where} has no '{field}' column (columns: {', '.join(map(str, columns))}); "
            "pick one with --text-field"
        )
    return [(str(i), t) for i, t in enumerate(values) if isinstance(t, str)]
