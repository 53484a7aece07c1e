"""What an experiment fits: samples cut into prefixes at the grid's lengths, each prefix's H_LM, the keys
that name them. Everything here is decided before any fitting, identically on every rank."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import PrototokError
from ..layouts import Layout
from ..models import LoadedModel
from ..tokens import added_bos, tokenize

# Default shortest sample for the experiments: ~6 characters per token for the capacity grid's longest length
# (1448 tokens), so every sample serves every length.
EXPERIMENT_MIN_CHARS = 9000


def source_key(samples, data_seed: int = 0, min_chars: int = EXPERIMENT_MIN_CHARS) -> str:
    """The samples' own (normalised) source spec, plus the loading options that differ from the defaults:
    another data seed or minimum length draws other samples, so they must not share keys."""
    extra = [f"seed={data_seed}"] * (data_seed != 0) + [f"min_chars={min_chars}"] * (min_chars != EXPERIMENT_MIN_CHARS)
    return samples[0].source + (f"@{','.join(extra)}" if extra else "")


def tokens_sha256(tokens: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, tokens)).encode()).hexdigest()


@torch.no_grad()
def lm_scores(lm: LoadedModel, tokens: list[int]) -> tuple[list[float], list[int], str]:
    """H_LM of every prefix and the tokens the frozen model gets right alone: bits[k] = its cross-entropy of
    tokens[:k+1], summed, in bits (as rows store it; reports show nats, the paper's unit:
    experiments.capacity.nats), correct[k] = its teacher-forced argmax hits over the same positions
    (hidden_capacity's original_accuracy, as a count: the baseline's Token and Information Gain need both).

    Convention, hidden_capacity's (train.py tokenizes with the tokenizer's defaults): token 0 is predicted from
    BOS when the tokenizer adds one by default ("bos": Llama-3); otherwise ("none": Pythia, SmolLM2, which name
    a BOS token but do not add it) token 0 has no context and is left out of the sum. One forward pass gives
    every prefix: the sum over a prefix is a cumulative sum of per-token losses (causal model). On CUDA the
    backbone runs under the model's bf16 autocast, as fitting does.
    """
    from ..onepass import hidden_states, row_scores

    bos = added_bos(lm)
    ids = ([bos] if bos is not None else []) + list(tokens)
    ids = ids[: lm.max_positions]
    if len(ids) < 2:  # a single token and no BOS: nothing is predicted
        return [0.0], [0], "none"
    x = torch.tensor([ids], device=lm.device)  # (1, L)
    h = hidden_states(lm, lm.model.get_input_embeddings()(x))[0, :-1]  # (L-1, d): position i predicts i+1
    targets = x[0, 1:]  # (L-1,)
    nats, argmax = row_scores(lm, h, targets)
    bits = (nats.cpu().double().cumsum(0) / math.log(2)).tolist()
    correct = (argmax.cpu() == targets.cpu()).long().cumsum(0).tolist()
    if bos is None:
        return [0.0, *bits], [0, *correct], "none"  # prefix of 1 token: nothing is predicted
    return bits, correct, "bos"


def h_lm_bits(lm: LoadedModel, tokens: list[int]) -> tuple[list[float], str]:
    """lm_scores' H_LM alone: (bits per prefix, convention)."""
    bits, _, ctx = lm_scores(lm, tokens)
    return bits, ctx


@dataclass
class Item:
    """One text to fit: the key fields that vary within an experiment, the tokens and their provenance."""

    sample: int
    length: int
    seed: int
    layout: str
    sharing: str
    tokens: list[int]
    doc: str
    offset: int
    h_lm: float | None
    h_lm_context: str
    lm_correct: int | None = None  # tokens the frozen model gets right alone (lm_scores), at the H_LM positions


@dataclass
class Prefixes:
    """One sample cut to every grid length it is long enough for, with the H_LM of each prefix."""

    sample: int
    doc: str
    offset: int
    tokens: dict[int, list[int]]  # length -> the sample's first `length` tokens (a drawing sample: its own text)
    bits: list[float]  # bits[k]: H_LM of the first k+1 tokens (shorter when the context cut it off)
    context: str  # H_LM convention: "bos" or "none"
    drawn_bits: dict[int, float] | None = None  # a drawing sample (data.drawn_tokens): grid length -> its H_LM
    correct: list[int] | None = None  # correct[k]: lm_scores' hits over the first k+1 tokens
    drawn_correct: dict[int, int] | None = None  # a drawing sample: grid length -> its hits

    def item(self, length: int, seed: int, layout: str, sharing: str = "none") -> Item:
        """The text at grid value `length`: a prefix, or for a drawing sample its own shorter text (the row is
        keyed by the grid value, as hidden_capacity's max_length; its tokens say how long it is)."""
        if self.drawn_bits is not None:
            h, c = self.drawn_bits.get(length), (self.drawn_correct or {}).get(length)
        else:  # the text's own count: a short text fitted whole is shorter than its grid length
            k = len(self.tokens[length])
            h = self.bits[k - 1] if k <= len(self.bits) else None
            c = self.correct[k - 1] if self.correct and k <= len(self.correct) else None
        return Item(
            self.sample, length, seed, layout, sharing, self.tokens[length], self.doc, self.offset, h, self.context, c
        )


def load(
    spec: str, n: int, lm: LoadedModel, *, data_seed: int = 0, min_chars: int = EXPERIMENT_MIN_CHARS
) -> tuple[str, list]:
    """(source key, samples) via prototok.sources."""
    from ..sources import load_samples

    samples = load_samples(spec, n, seed=data_seed, min_chars=min_chars, lm=lm)
    return source_key(samples, data_seed, min_chars), samples


def exact_length_texts(
    lm: LoadedModel,
    n_tokens: int,
    count: int,
    spec: str | None = None,
    *,
    data_seed: int = 0,
    min_chars: int = 2000,
    extra: Sequence[str] = (),
) -> list[list[int]]:
    """count token lists of exactly n_tokens, for measurements that compare settings on the same texts: the
    first n_tokens tokens of each of 3 x count samples of `spec` (of min_chars characters or more) long enough,
    in order, then of the `extra` texts. Raises PrototokError when fewer than count are long enough."""
    pool: list[str] = []
    if spec:
        from ..sources import load_samples

        pool = [s.text for s in load_samples(spec, count * 3, seed=data_seed, min_chars=min_chars, lm=lm)]
    out = []
    for text in [*pool, *extra]:
        ids = tokenize(lm.tokenizer, text)
        if len(ids) >= n_tokens:
            out.append(ids[:n_tokens])
        if len(out) == count:
            return out
    raise PrototokError(f"only {len(out)} texts of >= {n_tokens} tokens in {spec or 'the given texts'}")


def prefixes(
    lm: LoadedModel, samples: list, lengths: list[int], *, h_lm: bool = True, whole: bool = False
) -> list[Prefixes]:
    """Every sample's prefixes at the grid lengths; h_lm=False skips the one forward pass per sample that H_LM
    takes (a dry run). A sample too short for a length lacks it, unless `whole`: then it is fitted whole at the
    first grid length above its token count, as hidden_capacity's tokenizer truncation (max_length=L) gives a
    shorter text whole, the texts behind the off-grid Ctokens of arXiv 2505.21189's Table 3 (its row keeps the
    grid length; `tokens` says how many it has). Once, not at every longer length: it would be the same fit."""
    from ..sources import truncate

    out = []
    for i, s in enumerate(samples):
        toks = {n: t for n in lengths if (t := truncate(lm.tokenizer, s, n)) is not None}
        if whole and not s.draws:
            ids = tokenize(lm.tokenizer, s.text)
            above = [n for n in sorted(lengths) if n > len(ids)]
            if above and ids and len(ids) not in lengths:
                toks[above[0]] = ids
        if s.draws:  # one text per length: one H_LM pass each
            per = {n: lm_scores(lm, t) for n, t in toks.items()} if h_lm else {}
            fits = {n: len(toks[n]) - 1 for n, (b, _, _) in per.items() if len(toks[n]) <= len(b)}
            ctx = next((c for _, _, c in per.values()), "")
            bits = {n: per[n][0][k] for n, k in fits.items()}
            hits = {n: per[n][1][k] for n, k in fits.items()}
            out.append(Prefixes(i, s.doc, s.offset, toks, [], ctx, bits, None, hits))
            continue
        longest = toks[max(toks)] if toks else []
        bits, correct, ctx = lm_scores(lm, longest) if longest and h_lm else ([], [], "")
        out.append(Prefixes(i, s.doc, s.offset, toks, bits, ctx, correct=correct))
    return out


def fitted_tokens(row: dict) -> int | None:
    """Tokens of the text a row fitted: its `tokens`; for a row stored before that was recorded, its `length`
    (every text was then exactly that long), except a drawing source's (None: its drawn length is in its
    proto-token file only)."""
    from ..sources import draws_lengths

    if row.get("tokens") is not None:
        return row["tokens"]
    return None if draws_lengths(row.get("source", "")) else row["length"]


def whole_short(row: dict) -> bool:
    """A text shorter than its grid length, fitted whole (prefixes(whole=True)), not a drawn length: it counts
    towards the count statistic (Ctokens), never towards a grid value."""
    from ..sources import draws_lengths

    t = row.get("tokens")
    return t is not None and t < row["length"] and not draws_lengths(row.get("source", ""))


def usable_lengths(lm: LoadedModel, lengths, lay: Layout) -> tuple[list[int], list[int]]:
    """(lengths whose input under layout `lay` fits the model's context, those that do not)."""
    ok = [n for n in sorted(set(lengths)) if lay.length(n) <= lm.max_positions]
    return ok, [n for n in sorted(set(lengths)) if n not in ok]
