"""The paper's experiments as functions that fit texts and commit each result to a Store at once.

Shared machinery: a `Run` (model, store, recipe, hooks) fits `Item`s (one text each: a sample's prefix with
its key) in chunks of batch_size, writes a proto-token file per chunk, decodes it back in one batched pass
(timed: Table 4's decode throughput), and commits the chunk in one transaction. Already-stored keys are
skipped, so a rerun of a killed command picks up where it stopped.

Under torchrun (Run.dist, see prototok.distributed) the ranks share the work: texts by turn (Run.mine), a
group sharing a vector split over all ranks; Run.rows swaps new rows between ranks first, so every rank
reads the same results and takes the same path through an experiment.

Registry: EXPERIMENTS maps a name to its module's run function; a new experiment is one file plus one line.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import torch

from ..distributed import Dist, shard
from ..fit import Progress, fit, init_scale
from ..layouts import Layout, get_layout
from ..models import LoadedModel
from ..protofile import ProtoTokens
from ..recipes import RECIPES, Recipe
from ..store import KEY, Row, Store

THRESHOLD = 0.99  # the papers' "reconstructed": token accuracy at least this
MIN_CHARS = 9000  # default shortest sample: ~6 characters per token for the grid's longest length, 1448


def recipe_key(rec: Recipe) -> str:
    """Recipe name plus the fields that differ from the named recipe: 'paper' or 'paper(lr=0.05,max_steps=300)'."""
    base = RECIPES.get(rec.name)
    diff = [
        f"{f.name}={getattr(rec, f.name)}"
        for f in fields(rec)
        if f.compare and f.name != "name" and (base is None or getattr(rec, f.name) != getattr(base, f.name))
    ]
    return rec.name + (f"({','.join(diff)})" if diff else "")


def source_key(samples, data_seed: int = 0, min_chars: int = MIN_CHARS) -> str:
    """The samples' own (normalised) source spec, plus the loading options that differ from the defaults:
    another data seed or minimum length draws other samples, so they must not share keys."""
    extra = [f"seed={data_seed}"] * (data_seed != 0) + [f"min_chars={min_chars}"] * (min_chars != MIN_CHARS)
    return samples[0].source + (f"@{','.join(extra)}" if extra else "")


def tokens_sha256(tokens: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, tokens)).encode()).hexdigest()


@torch.no_grad()
def h_lm_bits(lm: LoadedModel, tokens: list[int]) -> tuple[list[float], str]:
    """H_LM of every prefix: bits[k] = the frozen model's cross-entropy of tokens[:k+1], summed, in bits.

    Convention: token 0 is predicted from the tokenizer's BOS token when it has one ("bos"); without one,
    token 0 has no context to be predicted from and is left out of the sum ("none"). One forward pass gives
    every prefix: the sum over a prefix is a cumulative sum of per-token losses (causal model). On CUDA the
    backbone runs under the model's bf16 autocast, as fitting does.
    """
    from ..onepass import hidden_states, row_scores

    bos = getattr(lm.tokenizer, "bos_token_id", None)
    ids = ([bos] if bos is not None else []) + list(tokens)
    ids = ids[: lm.max_positions]
    if len(ids) < 2:  # a single token and no BOS: nothing is predicted
        return [0.0], "none"
    x = torch.tensor([ids], device=lm.device)  # (1, L)
    h = hidden_states(lm, lm.model.get_input_embeddings()(x))[0, :-1]  # (L-1, d): position i predicts i+1
    targets = x[0, 1:]  # (L-1,)
    nats = row_scores(lm, h, targets)[0].cpu()  # (L-1,)
    bits = (nats.double().cumsum(0) / math.log(2)).tolist()
    if bos is None:
        return [0.0, *bits], "none"  # prefix of 1 token: nothing is predicted
    return bits, "bos"


def initial_vectors(lm: LoadedModel, rec: Recipe, seed: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (e, m) that fit(seed=seed) draws for the text at position `index` of its list (same stream, same
    scales; tests/test_experiments.py checks the two agree)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    scale = init_scale(lm, rec)
    d = lm.hidden_size
    e = torch.randn(d, generator=gen) * (scale * getattr(rec, "e_scale", 1.0))
    return e, torch.randn(d, generator=gen) * scale


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


@dataclass
class Run:
    """Everything fixed for one command: model, store, experiment name, source, recipe, hooks."""

    lm: LoadedModel
    store: Store
    experiment: str
    model: str
    source: str
    recipe: Recipe
    batch_size: int = 8
    on_step: Callable[[Progress], None] | None = None  # the fitter's per-step progress
    on_commit: Callable[[list[Row]], None] | None = None  # after each committed chunk
    dist: Dist | None = None  # ranks sharing the work (store is then this rank's RankStore); None: one process
    _done: set | None = field(default=None, repr=False)
    _turn: int = field(default=0, repr=False)  # work items dealt so far, in the walk every rank shares

    @property
    def recipe_key(self) -> str:
        return recipe_key(self.recipe)

    def key(self, it: Item) -> tuple:
        return (
            self.experiment,
            self.model,
            self.source,
            it.sample,
            it.length,
            it.seed,
            it.layout,
            it.sharing,
            self.recipe_key,
        )

    def done_keys(self) -> set:
        if self._done is None:
            self._done = self.store.done(
                experiment=self.experiment, model=self.model, source=self.source, recipe=self.recipe_key
            )
        return self._done

    def todo(self, items: list[Item]) -> list[Item]:
        done = self.done_keys()
        return [it for it in items if self.key(it) not in done]

    @property
    def ranks(self) -> bool:
        return self.dist is not None and self.dist.active

    def mine(self, items: list[Item]) -> list[Item]:
        """The items still to fit that fall to this rank: the k-th todo item of the run goes to rank k % world.
        Every rank walks the same items and holds the same stored keys, so the shares are disjoint and whole."""
        todo = self.todo(items)
        if not self.ranks:
            return todo
        turn, self._turn = self._turn, self._turn + len(todo)
        return [todo[i] for i in shard(len(todo), self.dist.rank, self.dist.world, turn)]

    def sync(self) -> None:
        """Swap the rows committed since the last swap with every other rank. A collective: every rank calls it
        at the same points (rows() does; the experiments branch only on what rows() returns)."""
        if not self.ranks:
            return
        fresh, self.store.fresh = self.store.fresh, []
        for rank, rows in enumerate(self.dist.exchange(fresh)):
            if rank != self.dist.rank and rows:
                self.store.add_others(rows)
                self.done_keys().update(tuple(getattr(r, k) for k in KEY) for r in rows)

    def rows(self, **where) -> list[dict]:
        self.sync()
        return self.store.rows(
            experiment=self.experiment, model=self.model, source=self.source, recipe=self.recipe_key, **where
        )

    def fit_texts(self, items: list[Item]) -> None:
        """Per-text vectors: chunks of batch_size, each committed as soon as it is fitted.

        Every text draws from its own stream, seeded by its key's (seed, sample) (init_ids), so a row's
        vectors depend on its key only, not on which chunk, rerun or rank it landed in.
        """
        todo = self.mine(items)
        for lay_name, seed in dict.fromkeys((it.layout, it.seed) for it in todo):
            group = [it for it in todo if (it.layout, it.seed) == (lay_name, seed)]
            for i in range(0, len(group), self.batch_size):
                chunk = group[i : i + self.batch_size]
                results = fit(
                    self.lm,
                    [it.tokens for it in chunk],
                    layout=lay_name,
                    recipe=self.recipe,
                    seed=seed,
                    batch_size=self.batch_size,
                    progress=self.on_step,
                    init_ids=[it.sample for it in chunk],
                )
                self._commit(chunk, results, get_layout(lay_name), share="none")

    def fit_group(self, items: list[Item], share: str, seed: int) -> None:
        """One group sharing e or m: fitted jointly, committed together (a group is all or nothing).

        Over several ranks, a group of at least `world` texts is split over all of them (its shared gradient
        all-reduced; each rank commits its own texts); a smaller one is fitted whole by the rank whose turn it is.
        """
        if not self.todo(items):
            return
        group = None
        if self.ranks:
            if len(items) >= self.dist.world:
                self.dist.barrier()  # ranks meet here (gloo, CPU), not in the fit's first all-reduce (NCCL)
                group = self.dist.group
            else:
                turn, self._turn = self._turn, self._turn + 1
                if turn % self.dist.world != self.dist.rank:
                    return
        results = fit(
            self.lm,
            [it.tokens for it in items],
            layout=items[0].layout,
            recipe=self.recipe,
            seed=seed,
            share=share,
            progress=self.on_step,
            process_group=group,
        )
        own = [items[r.index] for r in results]  # all of them, unless split over ranks
        self._commit(own, results, get_layout(items[0].layout), share=share, group=len(items))

    def _commit(self, items: list[Item], results, lay: Layout, share: str, group: int = 0) -> list[Row]:
        lm = self.lm
        e = torch.stack([r.e for r in results])  # (T, d); a shared e is the same row T times
        m = torch.stack([r.m for r in results])
        if share == "m":
            m = m[:1]
        proto = self._proto(items, results, e=e, m=m, layout=lay.name, extra={"share": share})
        rel = self._save_file(items, proto)
        decoded, seconds = timed_decode(lm, proto)
        batch = min(self.batch_size, len(items)) if share == "none" else group or len(items)
        return self._store_rows(items, results, proto, rel, decoded, seconds, batch)

    def _proto(self, items: list[Item], results, *, e, m, layout: str, extra: dict) -> ProtoTokens:
        """A chunk's vectors tied to the --model name, its fingerprints and the texts' token hashes, with each
        text's row key (keys) so a file found without its database still says what it holds."""
        lm = self.lm
        return ProtoTokens(
            e=e,
            m=m,
            layout=layout,
            lengths=[len(it.tokens) for it in items],
            model=self.model,
            model_fingerprint=lm.fingerprint,
            tokenizer_fingerprint=lm.tokenizer_fingerprint,
            accuracy=[r.accuracy for r in results],
            steps=[r.steps for r in results],
            text_sha256=[tokens_sha256(it.tokens) for it in items],
            recipe=self.recipe_key,
            seed=items[0].seed,
            extra=extra | {"keys": [list(self.key(it)) for it in items]},
        )

    def _save_file(self, items: list[Item], proto: ProtoTokens) -> str:
        """The chunk's proto-token file, named by its keys; written before the rows: a row never points at nothing."""
        digest = hashlib.sha256(repr([self.key(it) for it in items]).encode()).hexdigest()[:20]
        rel = f"{self.store.proto_dir.name}/{self.experiment}/{digest}.safetensors"
        proto.save(self.store.path.parent / rel)
        return rel

    def _store_rows(self, items, results, proto, rel, decoded, seconds, batch_size, **columns) -> list[Row]:
        """One committed row per text; `columns` holds per-method extras as lists aligned with items."""
        from .. import __version__

        lm, rows = self.lm, []
        for j, (it, r) in enumerate(zip(items, results)):
            ok = sum(a == b for a, b in zip(decoded[j], it.tokens))
            rows.append(
                Row(
                    *self.key(it),
                    model_fingerprint=lm.fingerprint,
                    tokenizer_fingerprint=lm.tokenizer_fingerprint,
                    doc=it.doc,
                    offset=it.offset,
                    tokens_sha256=tokens_sha256(it.tokens),
                    accuracy=r.accuracy,
                    solved=int(r.solved),
                    steps=r.steps,
                    loss=r.loss,
                    h_lm_bits=it.h_lm,
                    h_lm_context=it.h_lm_context,
                    fit_seconds=r.seconds,
                    batch_size=batch_size,
                    device=str(lm.device),
                    decode_seconds=seconds,
                    decode_tokens=sum(proto.lengths),
                    decode_accuracy=ok / len(it.tokens),
                    proto_path=rel,
                    proto_index=j,
                    version=__version__,
                    **{k: v[j] for k, v in columns.items()},
                )
            )
        self.store.add(rows)
        self.done_keys().update(self.key(it) for it in items)
        if self.on_commit:
            self.on_commit(rows)
        return rows


def timed_decode(lm: LoadedModel, proto: ProtoTokens) -> tuple[list[list[int]], float]:
    """One batched one-pass decode of a whole file, wall-clocked (the .cpu() inside syncs the device)."""
    from ..decode import decode_tokens

    t0 = time.perf_counter()
    with torch.no_grad():
        out = decode_tokens(lm, proto)
    return out, time.perf_counter() - t0


def _step_seconds(lm: LoadedModel, lay: Layout, batch: int, length: int) -> float:
    """Wall time of one fitter step (forward + backward) at this batch and length, after one warm-up."""
    from ..onepass import layout_scores

    times = []
    for _ in range(2):
        e = torch.randn(batch, lm.hidden_size, device=lm.device, requires_grad=True)
        m = torch.randn(batch, lm.hidden_size, device=lm.device, requires_grad=True)
        t0 = time.perf_counter()
        with torch.enable_grad():
            loss, _ = layout_scores(lm, lay, e, m, [[0] * length] * batch)
            loss.sum().backward()
        e.grad.sum().item()  # sync
        times.append(time.perf_counter() - t0)
    return times[-1]


@dataclass
class Plan:
    """What a command would fit: one entry per fit call shape, for --dry-run."""

    title: str
    calls: list[tuple[str, int, int, int]] = field(default_factory=list)  # (layout, length, texts, batch) per call
    done: int = 0  # texts already in the store
    notes: list[str] = field(default_factory=list)

    @property
    def texts(self) -> int:
        return sum(c[2] for c in self.calls)

    def steps(self, max_steps: int) -> int:
        """Upper bound on fitter steps (one forward + backward each): every text runs max_steps."""
        return len(self.calls) * (max_steps + 1)

    def estimate(self, lm: LoadedModel | None, max_steps: int) -> float | None:
        """Seconds if no text stops early, from two timed steps: t = a + b * (batch * length)."""
        if lm is None or not self.calls:
            return None
        lay = get_layout(self.calls[0][0])
        sizes = sorted({(c[3], c[1]) for c in self.calls}, key=lambda s: s[0] * s[1])
        lo, hi = sizes[0], sizes[-1]
        t_lo = _step_seconds(lm, lay, *lo)
        t_hi = _step_seconds(lm, lay, *hi) if hi != lo else t_lo
        span = hi[0] * hi[1] - lo[0] * lo[1]
        slope = (t_hi - t_lo) / span if span else 0.0
        per_call = [max(t_lo + slope * (c[3] * c[1] - lo[0] * lo[1]), 0.0) for c in self.calls]
        return sum(per_call) * (max_steps + 1)

    def render(self, recipe: Recipe, lm: LoadedModel | None = None) -> str:
        lines = [self.title, f"  texts to fit: {self.texts} ({self.done} already in the store)"]
        lines.append(
            f"  fit calls: {len(self.calls)}; at most {self.steps(recipe.max_steps):,} steps "
            f"(forward + backward) at max_steps {recipe.max_steps}; texts stop early once solved"
        )
        secs = self.estimate(lm, recipe.max_steps)
        if secs is not None:
            lines.append(f"  upper-bound time on {lm.device}: {_human(secs)} (from two timed steps)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _human(secs: float) -> str:
    if secs < 120:
        return f"{secs:.0f} s"
    if secs < 7200:
        return f"{secs / 60:.0f} min"
    return f"{secs / 3600:.1f} h"


@dataclass
class Prefixes:
    """One sample cut to every grid length it is long enough for, with the H_LM of each prefix."""

    sample: int
    doc: str
    offset: int
    tokens: dict[int, list[int]]  # length -> the sample's first `length` tokens
    bits: list[float]  # bits[k]: H_LM of the first k+1 tokens (shorter when the context cut it off)
    context: str  # H_LM convention: "bos" or "none"

    def item(self, length: int, seed: int, layout: str, sharing: str = "none") -> Item:
        h = self.bits[length - 1] if length <= len(self.bits) else None
        return Item(
            self.sample, length, seed, layout, sharing, self.tokens[length], self.doc, self.offset, h, self.context
        )


def load(spec: str, n: int, lm: LoadedModel, *, data_seed: int = 0, min_chars: int = MIN_CHARS) -> tuple[str, list]:
    """(source key, samples) via prototok.data."""
    from ..data import load_samples

    samples = load_samples(spec, n, seed=data_seed, min_chars=min_chars, lm=lm)
    return source_key(samples, data_seed, min_chars), samples


def prefixes(lm: LoadedModel, samples: list, lengths: list[int], *, h_lm: bool = True) -> list[Prefixes]:
    """Every sample's prefixes at the grid lengths (a sample too short for a length lacks it); h_lm=False
    skips the one forward pass per sample that H_LM takes (a dry run)."""
    from ..data import truncate

    out = []
    for i, s in enumerate(samples):
        toks = {n: t for n in lengths if (t := truncate(lm.tokenizer, s, n)) is not None}
        longest = toks[max(toks)] if toks else []
        bits, ctx = h_lm_bits(lm, longest) if longest and h_lm else ([], "")
        out.append(Prefixes(i, s.doc, s.offset, toks, bits, ctx))
    return out


def usable_lengths(lm: LoadedModel, lengths, layout: str) -> tuple[list[int], list[int]]:
    """(lengths whose input fits the model's context, those that do not)."""
    lay = get_layout(layout)
    ok = [n for n in sorted(set(lengths)) if lay.length(n) <= lm.max_positions]
    return ok, [n for n in sorted(set(lengths)) if n not in ok]


def chunks_of(n: int, size: int) -> list[int]:
    """Sizes of the fit calls that n texts are split into."""
    return [min(size, n - i) for i in range(0, n, size)]


from . import ablate, capacity  # noqa: E402

EXPERIMENTS: dict[str, Callable] = {
    "capacity": capacity.run_capacity,
    "layouts": ablate.run_layouts,
    "sharing": ablate.run_sharing,
}
