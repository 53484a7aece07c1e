"""Text sources for experiments: local files, Hub datasets, offline corpora, random words, model generations.

A source yields documents; `load_samples` cuts them into samples as the cramming papers do: a sample starts at
a sentence boundary after a document's first sentence, so the target is mid-document prose, and is long enough
(`min_chars`) for the caller to truncate it to N tokens with `truncate`. Every sample records where it came
from (source spec, document id, character offset), so a run can be repeated exactly.

Sources (`SOURCES`): a path or `file:PATH` (.txt, a folder of .txt, .jsonl with a `text` field; local_files),
`hf:NAME[:config][:split][#field]` (hf_datasets), `wiki` and `austen` (corpora), `random` (Debian word list)
and `random-glove` / `random-glove-drawn` (the papers' GloVe top-100k vocabulary, shipped in `data_files/`;
random_words), `generated:SOURCE` (generated), and `second-half:SOURCE` (a document source cut as
hidden_capacity cuts its PG-19 / fanfics chunks: one sample per document, its second half of sentences,
documents in order; second_half). Document sources are cut into sentence-bounded windows (windows.pick).

This module holds what is about specs: the registry, parsing and checking a spec, and the sources that wrap
another spec (generated:, second-half:), which load their inner source through it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import PrototokError
from ..tokens import tokenize
from .corpora import from_austen, from_wiki
from .generated import context_chars, continuations, continue_contexts
from .hf_datasets import from_hub, parse_hub
from .local_files import from_files
from .random_words import drawn_tokens, glove_drawn_samples, glove_samples, random_samples
from .sample import Documents, Sample
from .second_half import halves
from .windows import pick

__all__ = [
    "DOCUMENT_SOURCES",
    "SOURCES",
    "Documents",
    "Sample",
    "Source",
    "check_spec",
    "continuation_samples",
    "draws_lengths",
    "is_random",
    "load_samples",
    "truncate",
    "with_text_field",
]

# A document source: argument after "name:" -> (its source key, documents)
DOCUMENT_SOURCES: dict[str, Callable[[str], tuple[str, Documents]]] = {
    "file": lambda arg: (f"file:{Path(arg).resolve()}", from_files(arg)),
    "hf": lambda arg: (f"hf:{arg}", from_hub(arg)),
    "wiki": lambda arg: ("wiki", from_wiki()),
    "austen": lambda arg: ("austen", from_austen()),
}


def _documents(spec: str) -> tuple[str, Documents]:
    name, arg = _parse(spec)
    if name not in DOCUMENT_SOURCES:
        raise PrototokError(f"second-half: needs a document source ({', '.join(DOCUMENT_SOURCES)}), got '{spec}'")
    return DOCUMENT_SOURCES[name](arg)


def _generated(inner: str, n: int, seed: int, min_chars: int, lm) -> list[Sample]:
    """generated:INNER: the model's continuations of n samples of INNER (see generated.continue_contexts)."""
    if lm is None:
        raise PrototokError(f"generated:{inner} needs a model to generate with")
    contexts = load_samples(inner, n, seed=seed, min_chars=context_chars(lm))
    return continue_contexts(lm, contexts, seed, min_chars)


# A source: (argument after "name:", n, seed, min_chars, lm) -> samples
Source = Callable[[str, int, int, int, object], list[Sample]]


def _windows(name: str) -> Source:
    """A document source cut into sentence-bounded windows (pick)."""
    return lambda arg, n, seed, mc, lm: pick(*DOCUMENT_SOURCES[name](arg), n, seed, mc)


SOURCES: dict[str, Source] = {
    **{name: _windows(name) for name in DOCUMENT_SOURCES},
    "random": lambda arg, n, seed, mc, lm: random_samples(n, seed, mc),
    "random-glove": lambda arg, n, seed, mc, lm: glove_samples(n, seed, mc),
    "random-glove-drawn": lambda arg, n, seed, mc, lm: glove_drawn_samples(n, seed),
    "generated": _generated,
    "second-half": lambda arg, n, seed, mc, lm: halves(*_documents(arg), n, seed),
}
_TAKES_ARG = ("file", "hf", "generated", "second-half")
DRAWING_SOURCES = ("random-glove-drawn",)  # each grid length L gets its own text of a length drawn in 2..L
RANDOM_SOURCES = ("random", "random-glove", "random-glove-drawn")  # words drawn at random, no document


def draws_lengths(source_key: str) -> bool:
    """Whether a source key's rows fit texts of drawn lengths: `length` is the grid value L, the text 2..L
    tokens (hidden_capacity's --shuffled)."""
    return source_key.partition("@")[0] in DRAWING_SOURCES


def is_random(spec: str) -> bool:
    """Whether a spec or source key names random-word texts (the cramming paper used 100 of them per length
    where it used 50 natural texts)."""
    return spec.partition("@")[0] in RANDOM_SOURCES


def _parse(spec: str) -> tuple[str, str]:
    name, sep, arg = spec.partition(":")
    if name in SOURCES and bool(sep and arg) == (name in _TAKES_ARG):
        return name, arg
    if name not in SOURCES and (Path(spec).exists() or "/" in spec or spec.endswith((".txt", ".jsonl"))):
        return "file", spec  # a bare path
    known = ", ".join(["PATH"] + [f"{k}:..." if k in _TAKES_ARG else k for k in SOURCES])
    raise PrototokError(f"unknown data source '{spec}': use one of {known}")


def check_spec(spec: str) -> None:
    """Refuse a data spec that cannot load before anything is created: an unknown source name, a path that is
    not there, generated: over a bad inner spec. (What only loading tells, an empty folder or an offline Hub
    dataset, is refused when it loads.)"""
    name, arg = _parse(spec)
    if name == "file" and not Path(arg).exists():
        raise PrototokError(f"no such file or folder: {arg}")
    if name == "hf":
        parse_hub(arg)
    if name == "generated":
        check_spec(arg)
    if name == "second-half":
        check_spec(arg)
        if _parse(arg)[0] not in DOCUMENT_SOURCES:
            raise PrototokError(f"second-half: needs a document source ({', '.join(DOCUMENT_SOURCES)}), got '{arg}'")


def with_text_field(spec: str, field: str | None) -> str:
    """`--text-field F` applied to a data spec: hf: specs name their column as `#F` (part of the source key, so
    rows from another column are not mixed with these); other specs are returned as they are."""
    if spec.startswith("second-half:"):  # a wrapper: the column is its inner hf: source's
        return "second-half:" + with_text_field(spec.removeprefix("second-half:"), field)
    if not field or not spec.startswith("hf:") or "#" in spec:
        return spec
    return spec if field == "text" else f"{spec}#{field}"


def load_samples(spec: str, n: int, *, seed: int = 0, min_chars: int = 2000, lm=None) -> list[Sample]:
    """n samples of at least min_chars from a source, the same ones in the same order for a given seed.

    Fewer than n are returned when the source has fewer; none at all is an error. `lm` (a LoadedModel) is
    needed only by generated:SOURCE."""
    if n < 1:
        raise PrototokError(f"number of samples must be at least 1, got {n}")
    name, arg = _parse(spec)
    return SOURCES[name](arg, n, seed, min_chars, lm)


def continuation_samples(lm, inner: str, contexts: int, per_context: int, length: int, data_seed: int = 0):
    """(source key, samples): `per_context` sampled continuations (temperature 1, EOS suppressed) of each of
    `contexts` contexts drawn from `inner`, as generated:INNER but several per context, for texts that share
    a context (the geometry experiment's same-context pairs); sample i continues context i // per_context.
    Each context has its own torch stream, so adding contexts keeps the earlier texts. `length` (tokens per
    text) sets how much is generated: twice that plus room for the cut at the first sentence boundary."""
    ctxs = load_samples(inner, contexts, seed=data_seed, min_chars=context_chars(lm))
    return continuations(lm, ctxs, per_context, length, data_seed)


def truncate(tokenizer, sample: Sample, n_tokens: int) -> list[int] | None:
    """The sample's first n_tokens token ids (no special tokens), or None if it has fewer. A sample that
    draws (glove_drawn_samples) gives its own text for n_tokens, of a drawn length <= n_tokens."""
    if sample.draws:
        return drawn_tokens(tokenizer, sample, n_tokens)
    ids = tokenize(tokenizer, sample.text)
    return ids[:n_tokens] if len(ids) >= n_tokens else None
