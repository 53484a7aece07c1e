"""Geometry of the solutions (arXiv 2505.21189, Figs. 6 and 7) as a resumable experiment.

Several seeds per text are fitted through Run.fit_texts (rows of experiment "geometry" in the `runs` table,
with their proto-token files), then three measurements go in a second table, `geometry`, one JSON value per
keyed row, committed as they finish and skipped when present:
  kind "distance": cosine distance of every pair of solutions [e; m] (and of e and m alone), with its group:
                   same-text, same-context (two continuations of one generated context), different-context;
  kind "path":     token accuracy along the straight line and along a trained quadratic Bezier curve between
                   two solutions of one text, and the curve's length over the line's (Fig. 7);
  kind "vector":   norms of e and m and their nearest vocabulary tokens (cosine), beside the table's norms;
  kind "probe" (with probe): greedy generation from [e, m] and from [BOS, e, m] as a prompt (params: which),
                   scored against the text (analysis.probe);
  kind "text-distance" (with text_distances, Fig. 5): for every pair of texts, their distance by TF-IDF or
                   MiniLM (params: which) beside the mean distance of their solutions (every seed pair).
Same-context groups come from `generated:SOURCE` with --continuations j: j sampled continuations of each of
--contexts contexts; sample i is continuation i % j of context i // j.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations

import torch

from ..analysis.distances import DistanceSummary, cosine_distances, solution_pairs, summarize_distances
from ..analysis.paths import connect, point
from ..analysis.probe import PROBE_PROMPTS, probe
from ..analysis.text_distances import TEXT_DISTANCES, text_distances
from ..analysis.vectors import describe, table_norms
from ..distributed import shard
from ..errors import PrototokError
from ..layouts import DEFAULT_LAYOUT, Layout, get_layout
from ..protofile import ProtoTokens
from ..sources import continuation_samples
from ..store import GEOMETRY_KEY
from .runner import THRESHOLD, Experiment, Plan, Run, Setup, chunks_of
from .texts import Prefixes, load, usable_lengths


@dataclass(frozen=True)
class GeometryConfig:
    length: int = 32  # tokens per text
    seeds: tuple[int, ...] = (0, 1, 2)  # one solution per seed and text
    layout: str = DEFAULT_LAYOUT  # by name, as the rows carry it
    continuations: int = 1  # texts per context (generated:SOURCE only); sample i has context i // continuations
    contexts: int | None = None  # generated:SOURCE only: contexts to continue (default: Setup.samples)
    pairs: int = 1  # same-text pairs connected per text: (seeds[0], seeds[1]), (seeds[1], seeds[2]), ...
    all_pairs: bool = False  # connect every pair of a text's solutions instead (the paper's all-pairs design)
    points: int = 11  # taus at which the line and the curve are scored
    bezier_steps: int = 200
    bezier_lr: float = 0.01  # relative: see analysis.paths.fit_bezier
    nearest: int = 3  # vocabulary tokens listed per vector
    text_distances: tuple[str, ...] = ()  # Fig. 5: "tfidf", "minilm" (analysis.text_distances)
    probe: bool = False  # also generate autoregressively from each solution (analysis.probe)

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"GeometryConfig.length must be >= 1, got {self.length}")
        if not self.seeds:
            raise ValueError("GeometryConfig.seeds must name at least one seed")
        if min(self.continuations, self.points, self.nearest) < 1 or min(self.pairs, self.bezier_steps) < 0:
            raise ValueError(f"GeometryConfig: counts must be positive, got {self}")
        _ = self.lay  # resolved now, once: an unknown name is a ValueError naming the legal layouts
        unknown = set(self.text_distances) - set(TEXT_DISTANCES)
        if unknown:
            raise ValueError(f"GeometryConfig.text_distances: unknown {sorted(unknown)}, use {TEXT_DISTANCES}")

    @cached_property
    def lay(self) -> Layout:
        """The layout itself (`layout` is its name, as stored), resolved once."""
        return get_layout(self.layout)

    @property
    def path_params(self) -> str:
        return f"points={self.points},steps={self.bezier_steps},lr={self.bezier_lr}"


def _name(sample: int, seed: int) -> str:
    """A solution's item in the geometry table: text (sample) and seed."""
    return f"s{sample}/seed{seed}"


def plan_geometry(run: Run, texts: list[Prefixes], cfg: GeometryConfig) -> Plan:
    """What run_geometry will fit: every (text, seed) not stored yet, in batches (the Bezier fits come after)."""
    plan = Plan(
        f"geometry: {len(texts)} texts x {len(cfg.seeds)} seeds at length {cfg.length}, layout {cfg.layout}, "
        f"recipe {run.recipe_key}; Bezier fits: up to {cfg.pairs} per text, {cfg.bezier_steps} steps each"
    )
    ok, dropped = usable_lengths(run.lm, [cfg.length], cfg.lay)
    if dropped:
        plan.notes.append(f"length {cfg.length} does not fit the model's context ({run.lm.max_positions})")
    have = [t for t in texts if cfg.length in t.tokens]
    for seed in cfg.seeds:
        todo = run.todo([t.item(cfg.length, seed, cfg.layout) for t in have]) if ok else []
        plan.done += len(have) - len(todo)
        plan.calls += [(cfg.lay, cfg.length, k, k) for k in chunks_of(len(todo), run.batch_size)]
    if len(have) < len(texts):
        plan.notes.append(f"{len(texts) - len(have)} texts are shorter than {cfg.length} tokens; skipped")
    return plan


@dataclass
class GeometrySummary:
    distances: dict[str, DistanceSummary]  # pair kind -> distances of [e; m]
    paths: list[dict]  # the geometry table's path rows for these texts, every rank's
    vectors: list[dict]  # {"item", "value"}: a vector row per solution
    table_norm: tuple[float, float]

    def render(self) -> str:
        head = f"{'group':>18} {'pairs':>6} {'mean':>8} {'std':>8} {'min':>8} {'max':>8}"
        lines = [head + "   (cosine distance of [e; m])"]
        for kind, d in self.distances.items():
            if d.count:
                lines.append(f"{kind:>18} {d.count:>6} {d.mean:>8.4f} {d.std:>8.4f} {d.min:>8.4f} {d.max:>8.4f}")
        for p in self.paths:
            v = p["value"]
            lines.append(
                f"path {p['item']}: min accuracy line {min(v['line_accuracy']):.3f}, Bezier "
                f"{min(v['curve_accuracy']):.3f}; curve/line length {v['length_ratio']:.3f}; "
                f"endpoint distance {v['cosine_distance']:.4f}"
            )
        if self.vectors:
            vs = [r["value"] for r in self.vectors]
            e_norm, m_norm = (statistics.fmean(v[k] for v in vs) for k in ("e_norm", "m_norm"))
            lines.append(
                f"|e| {e_norm:.2f}, |m| {m_norm:.2f}"
                f" (vocabulary embeddings: {self.table_norm[0]:.2f} +- {self.table_norm[1]:.2f})"
            )
            for r in self.vectors[:4]:
                v = r["value"]
                lines.append(f"  {r['item']}: e ~ {v['e_nearest']}, m ~ {v['m_nearest']}")
        return "\n".join(lines)


def solutions(run: Run, rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """e (S, d) and m (S, d) of stored rows, read from their proto-token files (a shared m is each row's m)."""
    files: dict[str, ProtoTokens] = {}
    es, ms = [], []
    for r in rows:
        proto = files.get(r["proto_path"]) or ProtoTokens.load(run.store.proto_file(r["proto_path"]))
        files[r["proto_path"]] = proto
        j = r["proto_index"]
        es.append(proto.e[j].reshape(-1).float())  # (d,)
        ms.append(proto.m[j if proto.m.shape[0] > 1 else 0].reshape(-1).float())  # (d,)
    return torch.stack(es), torch.stack(ms)  # (S, d) each


def run_geometry(run: Run, texts: list[Prefixes], cfg: GeometryConfig) -> GeometrySummary:
    """Fit every (text, seed), then store distances, vector reports and the line/Bezier paths not yet stored."""
    lm, n = run.lm, cfg.length
    if usable_lengths(lm, [n], cfg.lay)[1]:
        raise PrototokError(f"length {n} does not fit the model's context ({lm.max_positions}) with {cfg.layout}")
    have = [t for t in texts if n in t.tokens]
    if not have:
        raise PrototokError(f"no text has {n} tokens")
    for seed in cfg.seeds:
        run.fit_texts([t.item(n, seed, cfg.layout) for t in have], cfg.lay)
    keep = {t.sample for t in have}
    rows = [r for r in run.rows(length=n, layout=cfg.layout, sharing="none") if r["sample"] in keep]
    rows = sorted((r for r in rows if r["seed"] in cfg.seeds), key=lambda r: (r["sample"], r["seed"]))
    e, m = solutions(run, rows)  # (S, d) each
    base = (run.model, run.source, run.recipe_key, cfg.layout, n)
    names = [_name(r["sample"], r["seed"]) for r in rows]
    text_ids = [r["sample"] for r in rows]
    contexts = [r["sample"] // cfg.continuations for r in rows]

    # Fig. 6: every pair, in float64 (distances.cosine_distances)
    d_all, d_e, d_m = (cosine_distances(x) for x in (point(e, m), e, m))  # (S, S) each
    tokens_of = {t.sample: t.tokens[n] for t in have}

    def text_pair(d: torch.Tensor, a: int, b: int) -> dict:
        """Texts a and b: their distance, and the mean distance of their solutions over every seed pair."""
        ia, ib = [i for i, t in enumerate(text_ids) if t == a], [i for i, t in enumerate(text_ids) if t == b]
        solution = {"distance": d_all, "e": d_e, "m": d_m}  # (S, S) each
        return {"text": float(d)} | {k: float(x[ia][:, ib].double().mean()) for k, x in solution.items()}

    dist_rows = [
        (
            *base,
            "distance",
            f"{names[a]}|{names[b]}",
            "",
            lm.fingerprint,
            {"group": kind, "distance": float(d_all[a, b]), "e": float(d_e[a, b]), "m": float(d_m[a, b])},
        )
        for a, b, kind in solution_pairs(text_ids, contexts)
    ]
    run.store.add_geometry(dist_rows)

    # Fig. 5: text distance beside solution distance, per pair of texts (skipped when stored)
    this = dict(zip(GEOMETRY_KEY, base))  # model, source, recipe, layout, length
    samples = sorted({r["sample"] for r in rows})
    text_pairs = list(combinations(enumerate(samples), 2))  # ((i, sample a), (j, sample b)), i < j
    for kind in cfg.text_distances:
        stored_pairs = {r["item"] for r in run.store.geometry(**this, kind="text-distance", params=kind)}
        if {f"s{a}|s{b}" for (_, a), (_, b) in text_pairs} <= stored_pairs:
            continue  # every pair stored: the embedding model is not even loaded
        words = [lm.tokenizer.decode(tokens_of[s]) for s in samples]
        d_text = text_distances(kind, words, str(lm.device) if lm.device.type == "cuda" else "cpu")
        run.store.add_geometry(
            [
                (*base, "text-distance", f"s{a}|s{b}", kind, lm.fingerprint, text_pair(d_text[i, j], a, b))
                for (i, a), (j, b) in text_pairs
            ]
        )

    # probing: the proto-tokens as an ordinary prompt (skipped when stored; [BOS, e, m] needs a named BOS)
    prompts = [p for p in PROBE_PROMPTS if cfg.probe and (p == "e m" or lm.tokenizer.bos_token_id is not None)]
    for prompt in prompts:
        stored_probes = {r["item"] for r in run.store.geometry(**this, kind="probe", params=prompt)}
        todo_idx = [i for i, name in enumerate(names) if name not in stored_probes]
        if todo_idx:
            found = probe(lm, e[todo_idx], m[todo_idx], [tokens_of[text_ids[i]] for i in todo_idx], prompt)
            probe_rows = [
                (*base, "probe", names[i], prompt, lm.fingerprint, p.record() | {"fit_accuracy": rows[i]["accuracy"]})
                for i, p in zip(todo_idx, found)
            ]
            run.store.add_geometry(probe_rows)

    # norms and nearest tokens
    t_mean, t_std = table_norms(lm)
    reports = describe(lm, e, m, cfg.nearest)
    vec_rows = [
        {"accuracy": r["accuracy"], "table_norm": [t_mean, t_std]} | rep.record() for r, rep in zip(rows, reports)
    ]
    run.store.add_geometry([(*base, "vector", names[i], "", lm.fingerprint, v) for i, v in enumerate(vec_rows)])

    # Fig. 7: line vs Bezier between two solutions of one text, the expensive part: one commit per path.
    # Under torchrun the paths still to fit are dealt over the ranks (every rank sees the same stored ones),
    # then the ranks swap what they stored, so each summary (rank 0's is printed) holds every path.
    stored = {r["item"] for r in run.store.geometry(**this, kind="path", params=cfg.path_params)}
    index = {(r["sample"], r["seed"]): i for i, r in enumerate(rows)}
    todo = []
    for t in have:
        seeds = [s for s in cfg.seeds if (t.sample, s) in index]
        pairs = list(combinations(seeds, 2)) if cfg.all_pairs else list(zip(seeds, seeds[1:]))[: cfg.pairs]
        items = [(t, s0, s1, f"s{t.sample}/seed{s0}-seed{s1}") for s0, s1 in pairs]
        todo += [it for it in items if it[3] not in stored]
    if run.ranks:
        todo = [todo[i] for i in shard(len(todo), run.dist.rank, run.dist.world)]
    fitted = []
    for t, s0, s1, item in todo:
        i0, i1 = index[(t.sample, s0)], index[(t.sample, s1)]
        c = connect(
            lm,
            tokens_of[t.sample],
            point(e[i0], m[i0]),
            point(e[i1], m[i1]),
            points=cfg.points,
            layout=cfg.lay,
            steps=cfg.bezier_steps,
            lr=cfg.bezier_lr,
            seed=s0,
        )
        solved = bool(rows[i0]["accuracy"] >= THRESHOLD and rows[i1]["accuracy"] >= THRESHOLD)
        fitted.append((*base, "path", item, cfg.path_params, lm.fingerprint, c.record() | {"endpoints_solved": solved}))
        run.store.add_geometry(fitted[-1:])
    if run.ranks:
        for rank, theirs in enumerate(run.dist.exchange(fitted)):
            if rank != run.dist.rank and theirs:
                run.store.add_geometry(theirs)
    paths = run.store.geometry(**this, kind="path", params=cfg.path_params)
    paths = sorted((p for p in paths if int(p["item"].split("/")[0][1:]) in keep), key=lambda p: p["item"])
    vectors = [{"item": names[i], "value": v} for i, v in enumerate(vec_rows)]
    distances = summarize_distances(d_all, text_ids, contexts)
    return GeometrySummary(distances, paths, vectors, (t_mean, t_std))


def load_geometry(spec: str, lm, setup: Setup, cfg: GeometryConfig) -> tuple[str, list]:
    """generated:SOURCE gives same-context texts (cfg.continuations per context); other sources load as usual."""
    if spec.startswith("generated:"):
        inner = spec.partition(":")[2]
        n_ctx = cfg.contexts or setup.samples
        return continuation_samples(lm, inner, n_ctx, cfg.continuations, cfg.length, setup.data_seed)
    if cfg.contexts is not None or cfg.continuations > 1:
        raise PrototokError("--contexts/--continuations need --data generated:SOURCE")
    return load(spec, setup.samples, lm, data_seed=setup.data_seed, min_chars=setup.min_chars)


EXPERIMENT = Experiment(
    "geometry", plan_geometry, run_geometry, lambda summary: summary.render(), lambda cfg: [cfg.length], load_geometry
)
