"""The geometry of proto-token solutions (arXiv 2505.21189, section 5: Figs. 6 and 7).

A solution is the point p = [e; m] (2d,) that makes the frozen model write one text. This module fits several
per text (one seed each), measures how far apart they lie (cosine distance, grouped as same text / same
context / different context), whether two solutions of one text are connected by a path of solutions (the
straight line between them, and a quadratic Bezier curve whose control point is trained, as in the
mode-connectivity work of Garipov et al., 2018), and how e and m relate to the vocabulary's embeddings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..fit import FitResult, Progress, fit
from ..layouts import DEFAULT_LAYOUT, Layout, get_layout
from ..models import LoadedModel
from ..onepass import layout_scores
from ..recipes import DEFAULT_RECIPE, Recipe, get_recipe

PAIR_KINDS = ("same-text", "same-context", "different-context")


# ---------------------------------------------------------------- several solutions per text


def fit_seeds(
    lm: LoadedModel,
    token_lists: list[list[int]],
    seeds: list[int],
    *,
    layout: str | Layout = DEFAULT_LAYOUT,
    recipe: str | Recipe = DEFAULT_RECIPE,
    batch_size: int = 8,
    progress: Callable[[Progress], None] | None = None,
) -> list[list[FitResult]]:
    """result[i][j]: text i fitted from seed seeds[j] (per-text e and m).

    All (text, seed) pairs share one continuous batch. Each pair starts from the draw fit(..., seed=seeds[j])
    makes for text i (read off a zero-step fit, one forward per text and seed), and a text's trajectory does
    not depend on its batch, so result[i][j] is what that call returns for text i (a recipe with restarts
    re-draws from the batch's own streams instead).
    """
    rec = get_recipe(recipe) if isinstance(recipe, str) else recipe
    pairs = [(i, s) for s in seeds for i in range(len(token_lists))]
    # fit's own first draws (zero steps: the kept solution is the init), so no copy of its init logic here
    starts = {s: fit(lm, token_lists, layout=layout, recipe=replace(rec, max_steps=0), seed=s) for s in seeds}
    flat = fit(
        lm,
        [token_lists[i] for i, _ in pairs],
        layout=layout,
        recipe=rec,
        batch_size=batch_size,
        progress=progress,
        warm_start=[(starts[s][i].e, starts[s][i].m) for i, s in pairs],
    )
    out: list[list[FitResult]] = [[] for _ in token_lists]
    for (i, _), r in zip(pairs, flat):
        r.index = i
        out[i].append(r)
    return out


def point(r: FitResult) -> torch.Tensor:
    """A solution as one vector [e; m] (2d,)."""
    return torch.cat([r.e, r.m])


def split(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 2d) -> e (..., d), m (..., d)."""
    d = p.shape[-1] // 2
    return p[..., :d], p[..., d:]


# ---------------------------------------------------------------- distances (Fig. 6)


def cosine_distances(points: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of every pair of rows: (S, D) -> (S, S), symmetric, zero diagonal exactly."""
    x = F.normalize(points.double(), dim=-1)  # float64: distances near 0 stay meaningful
    dist = (1 - x @ x.T).clamp(min=0)  # (S, S)
    dist = (dist + dist.T) / 2  # matmul rounding can break symmetry by an ulp
    return dist.fill_diagonal_(0).float()


def pair_kind(text_i, text_j, context_i, context_j) -> str:
    if text_i == text_j:
        return "same-text"
    return "same-context" if context_i == context_j else "different-context"


def pair_distances(dist: torch.Tensor, text_ids: list, context_ids: list | None = None) -> dict[str, torch.Tensor]:
    """Distances of all pairs i < j grouped by kind. text_ids: which text each solution solves; context_ids:
    which shared context each text was generated from (the paper's continuations; None: one context per text)."""
    contexts = list(text_ids) if context_ids is None else list(context_ids)
    if not (dist.shape[0] == dist.shape[1] == len(text_ids) == len(contexts)):
        raise ValueError(f"distance matrix {tuple(dist.shape)} needs one text id and context id per row")
    groups: dict[str, list[float]] = {k: [] for k in PAIR_KINDS}
    for i in range(len(text_ids)):
        for j in range(i + 1, len(text_ids)):
            groups[pair_kind(text_ids[i], text_ids[j], contexts[i], contexts[j])].append(float(dist[i, j]))
    return {k: torch.tensor(v) for k, v in groups.items()}


@dataclass
class DistanceSummary:
    kind: str
    count: int
    mean: float
    std: float
    min: float
    max: float


def summarize_distances(
    dist: torch.Tensor, text_ids: list, context_ids: list | None = None
) -> dict[str, DistanceSummary]:
    """Per pair kind: count, mean, std, min, max (NaN where a kind has no pairs)."""
    out = {}
    for kind, v in pair_distances(dist, text_ids, context_ids).items():
        nan = float("nan")
        stats = (v.mean(), v.std() if len(v) > 1 else nan, v.min(), v.max()) if len(v) else (nan,) * 4
        out[kind] = DistanceSummary(kind, len(v), *map(float, stats))
    return out


# ---------------------------------------------------------------- paths between two solutions (Fig. 7)


def line_points(p0: torch.Tensor, p1: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """(1 - tau) p0 + tau p1: (P,) -> (P, D); exactly p0 at tau 0 and p1 at tau 1."""
    t = taus.to(p0.dtype).unsqueeze(1)  # (P, 1)
    return (1 - t) * p0 + t * p1


def bezier_points(p0: torch.Tensor, theta: torch.Tensor, p1: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """B(tau) = (1-tau)^2 p0 + 2 tau (1-tau) theta + tau^2 p1: (P,) -> (P, D); exactly p0, p1 at the ends."""
    t = taus.to(p0.dtype).unsqueeze(1)  # (P, 1)
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * theta + t**2 * p1


def arc_length(p0: torch.Tensor, theta: torch.Tensor, p1: torch.Tensor, samples: int = 1000) -> float:
    """Length of the Bezier curve: sum of `samples` chord lengths (converges as samples^-2)."""
    pts = bezier_points(p0.double(), theta.double(), p1.double(), torch.linspace(0, 1, samples + 1))
    return float((pts[1:] - pts[:-1]).norm(dim=-1).sum())


def _point_scores(lm: LoadedModel, lay: Layout, tokens: list[int], pts: torch.Tensor):
    """One-pass loss (P,) with grad and correct counts (P,) of the text at each point (P, 2d)."""
    e, m = split(pts.to(lm.device))  # (P, d) each
    return layout_scores(lm, lay, e, m, [tokens] * pts.shape[0])


@torch.no_grad()
def point_scores(
    lm: LoadedModel,
    tokens: list[int],
    points: torch.Tensor,
    *,
    layout: str | Layout = DEFAULT_LAYOUT,
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss (P,) and token accuracy (P,) of one text's one-pass decoding at each point [e; m] (P, 2d)."""
    lay = get_layout(layout) if isinstance(layout, str) else layout
    losses, accs = [], []
    for i in range(0, points.shape[0], batch_size):
        loss, correct = _point_scores(lm, lay, tokens, points[i : i + batch_size])
        losses.append(loss.cpu())
        accs.append(correct.cpu().float() / len(tokens))
    return torch.cat(losses), torch.cat(accs)


@dataclass
class BezierFit:
    theta: torch.Tensor  # (2d,) the trained control point, on CPU
    losses: list[float]  # training loss per step: mean one-pass loss over that step's random taus
    steps: int
    seconds: float


def fit_bezier(
    lm: LoadedModel,
    tokens: list[int],
    p0: torch.Tensor,
    p1: torch.Tensor,
    *,
    layout: str | Layout = DEFAULT_LAYOUT,
    steps: int = 200,
    lr: float = 0.01,
    taus_per_step: int = 8,
    seed: int = 0,
) -> BezierFit:
    """Train the control point theta with Adam on tau ~ U(0, 1), minimising the one-pass loss at B(tau).

    theta starts at the midpoint (p0 + p1) / 2, where the curve is the straight line. lr is relative: Adam
    moves each coordinate by about lr times the rms gap between the endpoints, taken separately for the e
    and m halves, because e and m can live at very different scales (a recipe may draw e 20x larger) and an
    absolute step that suits one scrambles the other.
    """
    lay = get_layout(layout) if isinstance(layout, str) else layout
    dev = lm.device
    p0, p1 = p0.float().to(dev), p1.float().to(dev)
    mid_e, mid_m = split((p0 + p1) / 2)
    theta_e, theta_m = mid_e.clone().requires_grad_(), mid_m.clone().requires_grad_()  # (d,) each
    gap_e, gap_m = (g.pow(2).mean().sqrt().item() for g in split(p1 - p0))
    opt = torch.optim.Adam([{"params": [theta_e], "lr": lr * gap_e}, {"params": [theta_m], "lr": lr * gap_m}])
    gen = torch.Generator().manual_seed(seed)
    history, t0 = [], time.perf_counter()
    for _ in range(steps):
        taus = torch.rand(taus_per_step, generator=gen).to(dev)  # CPU stream: the same taus on any device
        theta = torch.cat([theta_e, theta_m])  # (2d,)
        loss, _ = _point_scores(lm, lay, tokens, bezier_points(p0, theta, p1, taus))
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(loss.detach())  # no .item() per step: one sync at the end
    losses = torch.stack(history).cpu().tolist() if history else []
    return BezierFit(torch.cat([theta_e, theta_m]).detach().cpu(), losses, steps, time.perf_counter() - t0)


@dataclass
class Connectivity:
    """Accuracy along the line and the trained Bezier curve between two solutions of one text (Fig. 7)."""

    taus: list[float]
    line_accuracy: list[float]
    line_loss: list[float]
    curve_accuracy: list[float]
    curve_loss: list[float]
    length_ratio: float  # arc length of the curve / length of the line (1.0: the curve is the line)
    cosine_distance: float  # between the two endpoints
    bezier: BezierFit


def connect(
    lm: LoadedModel,
    tokens: list[int],
    p0: torch.Tensor,
    p1: torch.Tensor,
    *,
    points: int = 11,
    layout: str | Layout = DEFAULT_LAYOUT,
    steps: int = 200,
    lr: float = 0.01,
    taus_per_step: int = 8,
    seed: int = 0,
    batch_size: int = 32,
) -> Connectivity:
    """Fit the Bezier curve between p0 and p1, then score both paths at `points` evenly spaced taus."""
    bez = fit_bezier(lm, tokens, p0, p1, layout=layout, steps=steps, lr=lr, taus_per_step=taus_per_step, seed=seed)
    p0, p1 = p0.float(), p1.float()
    taus = torch.linspace(0, 1, points)
    line_loss, line_acc = point_scores(lm, tokens, line_points(p0, p1, taus), layout=layout, batch_size=batch_size)
    pts = bezier_points(p0, bez.theta, p1, taus)
    curve_loss, curve_acc = point_scores(lm, tokens, pts, layout=layout, batch_size=batch_size)
    ratio = arc_length(p0, bez.theta, p1) / max(float((p1 - p0).double().norm()), 1e-12)
    return Connectivity(
        taus.tolist(),
        line_acc.tolist(),
        line_loss.tolist(),
        curve_acc.tolist(),
        curve_loss.tolist(),
        ratio,
        float(cosine_distances(torch.stack([p0, p1]))[0, 1]),
        bez,
    )


# ---------------------------------------------------------------- e, m and the vocabulary


@torch.no_grad()
def nearest_tokens(lm: LoadedModel, vectors: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarity (S, k) and ids (S, k) of the k input embeddings nearest each vector (S, d).

    Proto-tokens live in the input table's space (onepass.embed_inputs scales both alike), so the raw table
    is the right comparison.
    """
    table = F.normalize(lm.model.get_input_embeddings().weight.float(), dim=-1)  # (V, d)
    sims = F.normalize(vectors.float().to(table.device), dim=-1) @ table.T  # (S, V)
    cos, ids = sims.topk(k, dim=-1)
    return cos.cpu(), ids.cpu()


@torch.no_grad()
def table_norms(lm: LoadedModel) -> tuple[float, float]:
    """Mean and std of the input embeddings' L2 norms: the yardstick for |e| and |m|."""
    norms = lm.model.get_input_embeddings().weight.float().norm(dim=-1)
    return float(norms.mean()), float(norms.std())


@dataclass
class VectorReport:
    norm: float
    nearest_ids: list[int]  # most similar first
    nearest_tokens: list[str]
    cosine: list[float]


@dataclass
class SolutionReport:
    index: int  # the text's position in the input list
    e: VectorReport
    m: VectorReport


def describe(lm: LoadedModel, results: list[FitResult], k: int = 3) -> list[SolutionReport]:
    """Norms of e and m and their k nearest vocabulary tokens (by cosine similarity)."""
    reports = {}
    for name in ("e", "m"):
        vecs = torch.stack([getattr(r, name) for r in results])  # (S, d)
        cos, ids = nearest_tokens(lm, vecs, k)
        reports[name] = [
            VectorReport(
                float(v.norm()),
                row_ids.tolist(),
                lm.tokenizer.convert_ids_to_tokens(row_ids.tolist()),
                row_cos.tolist(),
            )
            for v, row_ids, row_cos in zip(vecs, ids, cos)
        ]
    return [SolutionReport(r.index, e, m) for r, e, m in zip(results, reports["e"], reports["m"])]
