"""Results out of the store: a table (`runs` or `geometry`) as CSV, a JSON array, JSON lines or Parquet.

Every column as stored, one record per row, in insertion order; times (`created`) as ISO 8601 in UTC
(schema.export_row), where the store keeps unix seconds. pandas reads every format (`pandas.read_json` a .json
array; `lines=True` for .jsonl) and the store itself with pandas.read_sql (the README shows how); the queries
themselves live in store.py.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .errors import PrototokError
from .files import atomic_write, atomic_write_text
from .schema import export_row
from .store import Store

FORMATS = ("csv", "json", "jsonl", "parquet")
SUFFIXES = {"parquet": "parquet", "pq": "parquet", "json": "json", "jsonl": "jsonl", "csv": "csv"}


def format_for(path: str | Path | None) -> str:
    """The format a file's name asks for (.json: a JSON array, .jsonl: JSON lines, .parquet/.pq); else csv."""
    suffix = Path(path).suffix.lower().lstrip(".") if path not in (None, "-") else ""
    return SUFFIXES.get(suffix, "csv")


def table_text(columns: list[str], rows: list[dict], fmt: str) -> str:
    """CSV (a header line, then one line per row), a JSON array (an object per row, one per line) or JSON lines
    (one object per line)."""
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()
    if fmt == "jsonl":
        return "".join(json.dumps({c: r.get(c) for c in columns}) + "\n" for r in rows)
    if fmt == "json":
        return "[" + ",".join("\n" + json.dumps({c: r.get(c) for c in columns}) for r in rows) + "\n]\n"
    raise PrototokError(f"format {fmt} is not text: use one of csv, json, jsonl")


def write_parquet(columns: list[str], rows: list[dict], path: str | Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise PrototokError("--format parquet needs pyarrow: pip install 'prototok[parquet]'") from None
    table = pa.Table.from_pydict({c: [r.get(c) for r in rows] for c in columns})
    atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp))


def export_table(db: str | Path, table: str, fmt: str, out: str | Path | None = None) -> tuple[int, str | None]:
    """Write `table` of database `db` to `out` (written atomically) in `fmt`; with out=None, return the text
    (csv, json, jsonl) instead. Returns (rows, text or None). The database is opened read-only."""
    if fmt not in FORMATS:
        raise PrototokError(f"unknown format '{fmt}': use one of {', '.join(FORMATS)}")
    if not Path(db).is_file():
        raise PrototokError(f"no results database at {db}")
    with Store(db, readonly=True) as store:
        columns, rows = store.export(table)
    rows = [export_row(r) for r in rows]
    if fmt == "parquet":
        if out is None:
            raise PrototokError("--format parquet is binary: give a file with -o")
        write_parquet(columns, rows, out)
        return len(rows), None
    text = table_text(columns, rows, fmt)
    if out is None:
        return len(rows), text
    atomic_write_text(Path(out), text)
    return len(rows), None
