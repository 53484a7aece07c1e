"""Random-word texts: `random` (Debian's English word list) and the papers' GloVe vocabulary texts,
`random-glove` (one long text per sample) and `random-glove-drawn` (hidden_capacity's drawn lengths). Every
sample draws from its own seeded stream, so sample I of seed SEED never depends on how many were asked."""

from __future__ import annotations

import random
import re
from functools import lru_cache

from ..errors import PrototokError
from ..files import atomic_write_text, read_text
from ..models import cache_dir
from ..tokens import tokenize
from .debian import debian_package
from .sample import Sample


@lru_cache(maxsize=1)
def english_words() -> list[str]:
    """Lower-case alphabetic words of Debian's wamerican list (~64k, SCOWL size 50), cached as one file."""
    folder = cache_dir() / "data" / "words"
    cached = folder / "words.txt"
    if not cached.exists():
        tree = debian_package("wamerican", folder)
        text = read_text(tree / "usr/share/dict/american-english")
        words = sorted({w for w in text.split() if re.fullmatch(r"[a-z]+", w)})
        atomic_write_text(cached, "\n".join(words) + "\n")
    return cached.read_text(encoding="utf-8").split()


def random_samples(n: int, seed: int, min_chars: int) -> list[Sample]:
    """Words drawn uniformly from an English word list (the papers' random-vocabulary texts); doc "SEED:I"
    regenerates sample I of seed SEED."""
    return _word_samples("random", english_words(), "", n, seed, min_chars)


def _word_samples(source: str, words: list[str], stream: str, n: int, seed: int, min_chars: int) -> list[Sample]:
    """n samples of words drawn uniformly (with replacement) until min_chars; sample I of seed SEED (doc "SEED:I")
    draws from its own stream (`stream` + "SEED:I"), so it does not depend on n."""
    out = []
    for i in range(n):
        rng = random.Random(f"{stream}{seed}:{i}")
        picked, size = [], -1
        while size < min_chars:
            picked.append(rng.choice(words))
            size += len(picked[-1]) + 1
        out.append(Sample(source, f"{seed}:{i}", 0, " ".join(picked)))
    return out


GLOVE_FILE = "glove_vocab_100k.txt"  # in prototok/data_files/, with its attribution (README.md there)


@lru_cache(maxsize=1)
def glove_words() -> list[str]:
    """The GloVe 6B top-100k vocabulary, one entry a line in frequency order, as the papers use it (punctuation
    and numbers included: hidden_capacity draws from the list as it is)."""
    from importlib import resources

    try:
        text = resources.files("prototok").joinpath("data_files", GLOVE_FILE).read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError) as err:
        missing = f"the packaged word list data_files/{GLOVE_FILE} is missing: reinstall prototok ({err})"
        raise PrototokError(missing) from None
    return [w for w in text.split("\n") if w.strip()]


def glove_samples(n: int, seed: int, min_chars: int) -> list[Sample]:
    """The papers' random texts (hidden_capacity's vocabulary experiment, train.py `--shuffled`): words drawn
    uniformly, with replacement, from the GloVe top-100k list, joined by spaces; each length takes the first N
    tokens. Sample I of seed SEED (doc "SEED:I") draws from its own stream, so it does not depend on n.
    hidden_capacity draws 5 x L words and a length per sample (uniform in 2..L for a grid value L): that is
    `random-glove-drawn` (glove_drawn_samples); here every sample is long enough for every grid length
    (min_chars) and is fitted at the grid's lengths."""
    return _word_samples("random-glove", glove_words(), "glove:", n, seed, min_chars)


def glove_drawn_samples(n: int, seed: int) -> list[Sample]:
    """hidden_capacity's vocabulary experiment as it runs (train.py `--shuffled`): for a grid value L, sample I
    is its own text, 5 x L GloVe words, cut to a length drawn uniformly in 2..L (`np.random.randint(2, L + 1)`).
    The text is drawn per (seed, sample, L) by drawn_tokens, so these samples carry no text of their own."""
    return [Sample("random-glove-drawn", f"{seed}:{i}", 0, "", draws=True) for i in range(n)]


def drawn_tokens(tokenizer, sample: Sample, length: int) -> list[int]:
    """Sample `sample` at grid value `length`: a length drawn in 2..length (the length itself below 2), then
    5 x length words drawn with replacement and the text's first that many tokens, from one stream per
    (seed:sample, length) so a text never depends on the grid or on the other samples."""
    rng = random.Random(f"glove-draw:{sample.doc}:{length}")
    n = rng.randint(2, length) if length >= 2 else length
    words = glove_words()
    return tokenize(tokenizer, " ".join(rng.choice(words) for _ in range(5 * length)))[:n]
