"""What every source yields: a `Sample` (a target text and where it came from) and `Documents` (a document
source's texts in a fixed order). Kept apart from the registry so each source module can use them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """One target text and where it came from."""

    source: str  # the spec that produced it: "wiki", "file:/abs/x.txt", "hf:name:split", "generated:wiki", ...
    doc: str  # document id within the source (title, relative file name, row index, ...)
    offset: int  # character offset of the sample's start in that document
    text: str  # long enough for the longest length asked; the caller truncates to N tokens
    draws: bool = False  # each grid length has its own text of a drawn length (drawn_tokens), not a prefix


Documents = list[tuple[str, str]]  # (doc id, text), in a fixed order
