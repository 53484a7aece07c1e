"""What every experiment shares: run_experiment (model, store, torchrun, resume), Setup, Experiment, Run, Plan.
What is fitted (samples, prefixes, items, H_LM) is decided in texts.py.

run_experiment(EXPERIMENT, config, Setup(...), method) is the whole command as a function: load the model,
open the store (merging rank files a crashed torchrun left), then per data source: samples -> prefixes -> plan
(dry run) or run -> rendered result. The CLI only builds its arguments.

A `Run` (model, store, method, hooks) fits `Item`s (one text each: a sample's prefix with
its key) in chunks of batch_size, writes a proto-token file per chunk, decodes it back in one batched pass
(timed: Table 4's decode throughput), and commits the chunk in one transaction. Already-stored keys are
skipped, so a rerun of a killed command picks up where it stopped.

Under torchrun (Run.dist, see prototok.distributed) the ranks share the work: texts by turn (Run.mine), a
group sharing a vector split over all ranks; Run.rows swaps new rows between ranks first, so every rank
reads the same results and takes the same path through an experiment.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..distributed import Dist, shard
from ..errors import PrototokError
from ..fit import FitProgress
from ..layouts import Layout
from ..methods import Method, to_proto
from ..models import DEFAULT_MODEL, LoadedModel
from ..store import KEY, Row, Store
from ..version import __version__
from .texts import EXPERIMENT_MIN_CHARS, Item, Prefixes, load, prefixes, tokens_sha256

THRESHOLD = 0.99  # the papers' "reconstructed": token accuracy at least this
DEFAULT_DB = "results/prototok.db"
TIMED_TOKENS = 2048  # the largest step a dry run times (tokens in the batch); larger shapes are extrapolated


@dataclass
class Run:
    """Everything fixed for one command: model, store, experiment name, source, recipe, hooks."""

    lm: LoadedModel
    store: Store
    experiment: str
    model: str
    source: str
    method: Method  # what fits and decodes the texts (methods.OnePass, baselines.cramming.Cramming)
    batch_size: int = 8
    on_step: Callable[[FitProgress], None] | None = None  # the fitter's per-step progress
    on_commit: Callable[[list[Row]], None] | None = None  # after each committed chunk
    dist: Dist | None = None  # ranks sharing the work (store is then this rank's RankStore); None: one process
    _done: set | None = field(default=None, repr=False)
    _turn: int = field(default=0, repr=False)  # work items dealt so far, in the walk every rank shares

    @property
    def recipe_key(self) -> str:
        """The `recipe` column of this run's rows: the method's resolved settings."""
        return self.method.key

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

    def fit_texts(self, items: list[Item], lay: Layout, warm: Callable[[Item], tuple | None] | None = None) -> None:
        """Per-text vectors under layout `lay` (the items' `layout` is the name their rows carry): chunks of
        batch_size, each committed as soon as it is fitted.

        Every text draws from its own stream, seeded by its key's (seed, sample) (init_ids), so a row's
        vectors depend on its key only, not on which chunk, rerun or rank it landed in. warm(item) gives an
        (e, m) to start an item from instead (None: it draws), e.g. its solution at a shorter length.
        """
        todo = self.mine(items)
        for seed in dict.fromkeys(it.seed for it in todo):
            group = [it for it in todo if it.seed == seed]
            for i in range(0, len(group), self.batch_size):
                chunk = group[i : i + self.batch_size]
                results = self.method.fit(
                    self.lm,
                    [it.tokens for it in chunk],
                    layout=lay,
                    seed=seed,
                    batch_size=self.batch_size,
                    progress=self.on_step,
                    init_ids=[it.sample for it in chunk],
                    **({"warm_start": [warm(it) for it in chunk]} if warm else {}),
                )
                self._commit(chunk, results, "none", min(self.batch_size, len(chunk)))

    def fit_group(
        self, items: list[Item], lay: Layout, share: str, seed: int, warm: Callable[[Item], tuple | None] | None = None
    ) -> None:
        """One group sharing e or m under layout `lay`: fitted jointly, committed together (all or nothing).
        warm(item): its (e, m) to start from (fit_resolved: the group starts warm when every item has one).

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
        results = self.method.fit(
            self.lm,
            [it.tokens for it in items],
            layout=lay,
            seed=seed,
            share=share,
            progress=self.on_step,
            process_group=group,
            **({"warm_start": [warm(it) for it in items]} if warm else {}),
        )
        own = [items[r.index] for r in results]  # all of them, unless split over ranks
        self._commit(own, results, share, len(items))

    def _commit(self, items: list[Item], results: list, share: str, batch_size: int) -> list[Row]:
        """The chunk's proto-token file (named by its keys, written before the rows: a row never points at
        nothing), decoded back by the method (timed: Table 4), then one row per text in one transaction. The
        file carries each text's row key, so a file found without its database still says what it holds."""
        proto = to_proto(
            self.method,
            self.lm,
            results,
            layout=items[0].layout,
            share=share,
            seed=items[0].seed,
            text_sha256=[tokens_sha256(it.tokens) for it in items],
            extra={"keys": [list(self.key(it)) for it in items]},
        )
        digest = hashlib.sha256(repr([self.key(it) for it in items]).encode()).hexdigest()[:20]
        rel = f"{self.store.proto_dir.name}/{self.experiment}/{digest}.safetensors"
        proto.save(self.store.path.parent / rel)
        t0 = time.perf_counter()
        with torch.no_grad():
            decoded = self.method.decode(self.lm, proto, self.batch_size)  # returns lists: the device is synced
        seconds = time.perf_counter() - t0
        columns = self.method.row_columns(results)
        return self._store_rows(items, results, proto, rel, decoded, seconds, batch_size, **columns)

    def _store_rows(self, items, results, proto, rel, decoded, seconds, batch_size, **columns) -> list[Row]:
        """One committed row per text; `columns` holds per-method extras as lists aligned with items."""
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
                    lm_correct=it.lm_correct,
                    tokens=len(it.tokens),
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


@dataclass
class Plan:
    """What a command would fit: one entry per fit call shape, for --dry-run."""

    title: str
    calls: list[tuple[Layout, int, int, int]] = field(default_factory=list)  # (layout, length, texts, batch) per call
    done: int = 0  # texts already in the store
    notes: list[str] = field(default_factory=list)

    @property
    def texts(self) -> int:
        return sum(c[2] for c in self.calls)

    def steps(self, max_steps: int) -> int:
        """Upper bound on fitter steps (one forward + backward each): every text runs max_steps."""
        return len(self.calls) * (max_steps + 1)

    def estimate(self, method: Method, lm: LoadedModel | None) -> float | None:
        """Seconds if no text stops early, from two timed steps: t = a + b * (batch * length).

        The timed steps are capped at TIMED_TOKENS tokens (and the line extrapolated): timing the largest shape
        itself (e.g. 8 texts x 1448 tokens) takes minutes on a CPU, longer than the dry run should."""
        if lm is None or not self.calls:
            return None
        max_steps = method.max_steps
        layout = self.calls[0][0]
        sizes = sorted({(c[3], c[1]) for c in self.calls}, key=lambda s: s[0] * s[1])
        lo, hi = sizes[0], sizes[-1]
        if lo[0] * lo[1] > TIMED_TOKENS:
            lo = (1, min(lo[1], TIMED_TOKENS // 8))
        if hi[0] * hi[1] > TIMED_TOKENS:
            hi = (1, TIMED_TOKENS)
        t_lo = method.step_seconds(lm, layout, *lo)
        t_hi = method.step_seconds(lm, layout, *hi) if hi != lo else t_lo
        span = hi[0] * hi[1] - lo[0] * lo[1]
        slope = (t_hi - t_lo) / span if span else 0.0
        per_call = [max(t_lo + slope * (c[3] * c[1] - lo[0] * lo[1]), 0.0) for c in self.calls]
        return sum(per_call) * (max_steps + 1)

    def render(self, method: Method, lm: LoadedModel | None = None) -> str:
        lines = [self.title, f"  texts to fit: {self.texts} ({self.done} already in the store)"]
        lines.append(
            f"  fit calls: {len(self.calls)}; at most {self.steps(method.max_steps):,} steps "
            f"(forward + backward) at max_steps {method.max_steps}; texts stop early once solved"
        )
        secs = self.estimate(method, lm)
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


def chunks_of(n: int, size: int) -> list[int]:
    """Sizes of the fit calls that n texts are split into."""
    return [min(size, n - i) for i in range(0, n, size)]


# ---------------------------------------------------------------------------------------------- the runner


@dataclass(frozen=True)
class Setup:
    """What every experiment command takes besides its own config: model, data, database, batching."""

    data: tuple[str, ...]  # data specs (prototok.sources): wiki, austen, random, PATH, hf:NAME, generated:SOURCE
    model: str = DEFAULT_MODEL
    device: str | None = None
    db: str = DEFAULT_DB  # SQLite results; proto-token files go beside it in <stem>.protos/
    samples: int = 10  # per data source
    # per random-word source (sources.is_random), when it differs: the cramming paper used 100 random texts where
    # it used 50 natural ones; None: `samples`
    random_samples: int | None = None
    data_seed: int = 0  # which samples are drawn
    min_chars: int = EXPERIMENT_MIN_CHARS  # shortest sample; a sample shorter than a length skips it
    batch_size: int = 8  # texts fitted at once
    dry_run: bool = False  # print the plan and its cost, fit nothing, create no database
    dtype: str | None = None  # float32, bfloat16, float16; None: the model's own on GPU, float32 on CPU
    revision: str | None = None  # of a Hub id

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("Setup.data must name at least one data source")
        if self.batch_size < 1:
            raise PrototokError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.random_samples is not None and self.random_samples < 1:
            raise ValueError(f"Setup.random_samples must be >= 1, got {self.random_samples}")
        if self.samples < 1 or self.min_chars < 1:
            raise ValueError(f"Setup.samples and min_chars must be >= 1, got {self.samples}, {self.min_chars}")


def samples_for(setup: Setup, spec: str) -> int:
    """Texts drawn from a data spec: setup.random_samples for random words when set, else setup.samples."""
    from ..sources import is_random

    return setup.random_samples if setup.random_samples is not None and is_random(spec) else setup.samples


Loader = Callable[[str, LoadedModel, Setup, object], tuple[str, list]]


@dataclass(frozen=True)
class Experiment:
    """One experiment: its plan, run and rendering over (Run, prefixes, config); registered in EXPERIMENTS."""

    name: str  # the `experiment` column of its rows
    plan: Callable[[Run, list[Prefixes], object], Plan]
    run: Callable[[Run, list[Prefixes], object], object]
    render: Callable[[object], str]
    lengths: Callable[[object], list[int]]  # the prefix lengths the config needs cut from each sample
    load: Loader | None = None  # (spec, lm, setup, config) -> (source key, samples); default: prototok.sources
    warm_starts: bool = False  # whether it can start a text from a shorter prefix's solution (method.warm)
    # the vector its fits share ("none", "m" or "e"; several kinds: any one, all refuse the same methods), which
    # run_experiment checks the method can fit before any work (Method.check_share)
    share: Callable[[object], str] = lambda config: "none"
    # a sample shorter than a grid length is fitted whole once (texts.prefixes(whole=True)): capacity's count
    # statistic; the other experiments compare texts of one length
    whole_texts: bool = False


Bar = Callable[[int, str], tuple[Callable[[FitProgress], None], Callable[[list[Row]], None], Callable[[], None]]]


def run_experiment(
    experiment: Experiment,
    config,
    setup: Setup,
    method: Method,
    *,
    echo: Callable[[str], None] = print,
    bar: Bar | None = None,
) -> list:
    """Run one experiment over every data source of `setup`; returns its result per source ([] on a dry run).

    Under torchrun (WORLD_SIZE > 1) every rank calls this: each joins the process group, commits to its own rank
    file, and rank 0 merges them at the end (and any a crashed run left, at the start); rank 0 alone echoes.
    bar(total, title) -> (on_step, on_commit, close): progress hooks, for rank 0 only.
    """
    if method.warm != "cold" and not experiment.warm_starts:
        raise PrototokError(
            f"experiment {experiment.name} fits every text cold: warm start '{method.warm}' is for capacity"
        )
    method.check_share(experiment.share(config))  # once, before any loading; the fits below trust it
    from ..distributed import RankStore, merge_rank_stores
    from ..distributed import setup as dist_setup
    from ..models import load_model

    dist, device = dist_setup(setup.device)
    say = echo if dist.rank == 0 else (lambda *_: None)
    lm = load_model(setup.model, device, method.load_dtype(setup.dtype), setup.revision)  # the precision rule
    sources = []  # every source loaded before any database is created: bad --data leaves nothing behind
    for spec in setup.data:
        if experiment.load is not None:
            sources.append(experiment.load(spec, lm, setup, config))
        else:
            sources.append(
                load(spec, samples_for(setup, spec), lm, data_seed=setup.data_seed, min_chars=setup.min_chars)
            )
    if dist.active and dist.rank == 0 and not setup.dry_run:
        Store(setup.db).close()  # created by one rank, before the others open it
    if dist.rank == 0 and not setup.dry_run:
        merge_rank_stores(setup.db)  # rows a crashed multi-rank run left in its rank files
    dist.barrier()
    dry_new = setup.dry_run and not Path(setup.db).exists()
    results = []
    with Store(":memory:" if dry_new else setup.db) as store:  # a dry run creates no database
        store.check_model(setup.model, lm.fingerprint)
        ranked = dist.active and not setup.dry_run
        writes = RankStore(store, dist.rank) if ranked else store  # each rank commits to <db>.rank{r}.db
        for source, samples in sources:
            texts = prefixes(
                lm, samples, experiment.lengths(config), h_lm=not setup.dry_run, whole=experiment.whole_texts
            )
            store.check_samples(source, {t.sample: (t.doc, t.offset) for t in texts})
            run = Run(lm, writes, experiment.name, setup.model, source, method, setup.batch_size)
            run.dist = dist if ranked else None
            plan = experiment.plan(run, texts, config)
            say(f"[{source}] {len(samples)} samples")
            if setup.dry_run:
                say(plan.render(method, lm))
                continue
            close = None
            if bar is not None and dist.rank == 0:
                run.on_step, run.on_commit, close = bar(-(-plan.texts // dist.world), f"{experiment.name} {source}")
            try:
                result = experiment.run(run, texts, config)
                run.sync()
            finally:
                if close:
                    close()
            say(experiment.render(result))
            results.append(result)
        if ranked:  # every rank's rows into the main database, once all have stopped writing
            writes.close()
            dist.barrier()
            if dist.rank == 0:
                merge_rank_stores(setup.db)
            dist.barrier()
        if not setup.dry_run:
            say(f"results in {setup.db} ({store.count()} rows)")
    return results
