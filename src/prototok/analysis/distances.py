"""How far apart solutions lie (arXiv 2505.21189, Fig. 6): cosine distances of every pair, grouped by kind.

A pair is two solutions of one text ("same-text"), of two texts continuing one shared context
("same-context"), or of unrelated texts ("different-context"); the paper's point is that the first group is
not tighter than the others, so a text has many far-apart solutions.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F

PAIR_KINDS = ("same-text", "same-context", "different-context")


def cosine_distances(points: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of every pair of rows: (S, D) -> (S, S), symmetric, zero diagonal exactly."""
    x = F.normalize(points.double(), dim=-1)  # (S, D) float64: distances near 0 stay meaningful
    dist = (1 - x @ x.T).clamp(min=0)  # (S, S)
    dist = (dist + dist.T) / 2  # (S, S) matmul rounding can break symmetry by an ulp
    return dist.fill_diagonal_(0).float()


def pair_kind(text_i, text_j, context_i, context_j) -> str:
    if text_i == text_j:
        return "same-text"
    return "same-context" if context_i == context_j else "different-context"


def solution_pairs(text_ids: list, context_ids: list | None = None) -> list[tuple[int, int, str]]:
    """(i, j, kind) for every pair i < j, in row order. text_ids: which text each solution solves;
    context_ids: which shared context each text was generated from (None: one context per text)."""
    contexts = list(text_ids) if context_ids is None else list(context_ids)
    if len(contexts) != len(text_ids):
        raise ValueError(f"{len(text_ids)} text ids but {len(contexts)} context ids")
    n = len(text_ids)
    return [
        (i, j, pair_kind(text_ids[i], text_ids[j], contexts[i], contexts[j])) for i in range(n) for j in range(i + 1, n)
    ]


def pair_distances(dist: torch.Tensor, text_ids: list, context_ids: list | None = None) -> dict[str, list[float]]:
    """Distances of all pairs i < j (dist: (S, S)), grouped by kind, every kind present (maybe empty)."""
    if not dist.shape[0] == dist.shape[1] == len(text_ids):
        raise ValueError(f"distance matrix {tuple(dist.shape)} needs one text id per row")
    groups: dict[str, list[float]] = {k: [] for k in PAIR_KINDS}
    for i, j, kind in solution_pairs(text_ids, context_ids):
        groups[kind].append(float(dist[i, j]))
    return groups


@dataclass
class DistanceSummary:
    kind: str
    count: int
    mean: float  # NaN (and so are std, min, max) when the kind has no pairs
    std: float  # population std: 0.0 for a single pair
    min: float
    max: float

    @classmethod
    def of(cls, kind: str, values: list[float]) -> DistanceSummary:
        if not values:
            nan = float("nan")
            return cls(kind, 0, nan, nan, nan, nan)
        std = statistics.pstdev(values) if len(values) > 1 else 0.0
        return cls(kind, len(values), statistics.fmean(values), std, min(values), max(values))


def summarize_distances(
    dist: torch.Tensor, text_ids: list, context_ids: list | None = None
) -> dict[str, DistanceSummary]:
    """Per pair kind: count, mean, std, min, max of the distances (dist: (S, S))."""
    return {k: DistanceSummary.of(k, v) for k, v in pair_distances(dist, text_ids, context_ids).items()}
