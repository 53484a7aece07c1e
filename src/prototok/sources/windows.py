"""Sentence-bounded windows: how a document source is cut into samples, as the cramming papers do (a sample
starts at a sentence boundary after a document's first sentence, so the target is mid-document prose)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from ..errors import PrototokError
from .sample import Documents, Sample

# a sentence ends at . ! ? (plus closing quotes/brackets) before whitespace and a capital or an opening quote,
# or at a paragraph break; "Mr. Woodhouse" is not a sentence end
_END = re.compile(r"""[.!?]["'’”)\]]*\s+(?=["'‘“(\[]?[A-Z0-9])|\n\s*\n\s*""")
_ABBREV = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "rev", "gen", "col", "capt", "lt", "vs", "no", "vol"}


def sentence_starts(text: str) -> list[int]:
    """Offsets where a sentence starts (after the first one)."""
    starts = []
    for m in _END.finditer(text):
        if text[m.start()] == ".":
            word = re.search(r"(\w+)$", text[max(0, m.start() - 12) : m.start()])  # a short slice: O(n) overall
            if word and (word.group(1).lower() in _ABBREV or len(word.group(1)) == 1):  # "J. Smith", "U.S."
                continue
        if m.end() < len(text):
            starts.append(m.end())
    return starts


def cut(text: str, min_chars: int) -> Iterator[tuple[int, str]]:
    """Non-overlapping (offset, text) windows of at least min_chars, each starting and ending at a sentence
    boundary; the document's first sentence is skipped, as in the papers (the target is the later sentences)."""
    starts = sentence_starts(text)
    ends = [_end_before(text, s) for s in starts[1:]] + [len(text.rstrip())]  # ends[k]: where sentence k ends
    i = 0
    while i < len(starts):
        pos, j = starts[i], i  # the window is sentences i..j
        while j + 1 < len(starts) and ends[j] - pos < min_chars:
            j += 1
        if ends[j] - pos < min_chars:
            return
        yield pos, text[pos : ends[j]]
        i = j + 1


def _end_before(text: str, start: int) -> int:
    """End of the sentence before `start`: the separating whitespace is not part of either."""
    while start > 0 and text[start - 1].isspace():
        start -= 1
    return start


def pick(source: str, docs: Documents, n: int, seed: int, min_chars: int) -> list[Sample]:
    """Cut documents into windows and pick n uniformly in a seeded order. A chunk corpus whose chunks are
    shorter than 2 * min_chars gives one sample per chunk, as in the papers; a few novels still give many."""
    windows = [(doc, off, text) for doc, full in docs for off, text in cut(full, min_chars)]
    random.Random(seed).shuffle(windows)
    if not windows:
        raise PrototokError(f"data source '{source}' has no text of {min_chars}+ characters after a first sentence")
    return [Sample(source, doc, off, text) for doc, off, text in windows[:n]]
