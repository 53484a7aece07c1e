"""Documents from local files: a .txt file, a folder of .txt files, or a .jsonl file with a `text` field."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import PrototokError
from ..files import read_text
from .sample import Documents


def _jsonl(path: Path) -> Documents:
    docs = []
    for i, line in enumerate(read_text(path).splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise PrototokError(f"{path} line {i + 1} is not JSON: {err}") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise PrototokError(f"{path} line {i + 1} has no string field 'text'")
        docs.append((str(i), row["text"]))  # doc id: 0-based line number
    return docs


def from_files(arg: str) -> Documents:
    """A .txt file, a folder of .txt files (recursively; ids are relative paths), or a .jsonl file."""
    path = Path(arg)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise PrototokError(f"folder {arg} has no .txt files")
        return [(str(p.relative_to(path)), read_text(p)) for p in files]
    if not path.is_file():
        raise PrototokError(f"no such file or folder: {arg}")
    if path.suffix == ".jsonl":
        return _jsonl(path)
    return [(path.name, read_text(path))]
