"""e and m against the vocabulary: their norms beside the embedding table's, and their nearest tokens.

Proto-tokens live in the input table's space (onepass.embed_inputs scales both alike), so the raw table is
the right yardstick: a solution that is (near) an ordinary token embedding would show up here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models import LoadedModel


@torch.no_grad()
def nearest_tokens(lm: LoadedModel, vectors: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarity (S, k) and ids (S, k) of the k input embeddings nearest each vector (S, d)."""
    table = F.normalize(lm.model.get_input_embeddings().weight.float(), dim=-1)  # (V, d)
    sims = F.normalize(vectors.float().to(table.device), dim=-1) @ table.T  # (S, V)
    cos, ids = sims.topk(k, dim=-1)  # (S, k) each
    return cos.cpu(), ids.cpu()


@torch.no_grad()
def table_norms(lm: LoadedModel) -> tuple[float, float]:
    """Mean and std of the input embeddings' L2 norms: the yardstick for |e| and |m|."""
    norms = lm.model.get_input_embeddings().weight.float().norm(dim=-1)  # (V,)
    return float(norms.mean()), float(norms.std())


@dataclass
class VectorReport:
    norm: float
    nearest_ids: list[int]  # most similar first
    nearest_tokens: list[str]
    cosine: list[float]


@dataclass
class SolutionReport:
    e: VectorReport
    m: VectorReport

    def record(self) -> dict:
        """The stored form (the geometry table's "vector" rows): norms, nearest tokens, cosines to 4 places."""
        out = {}
        for name, v in (("e", self.e), ("m", self.m)):
            out |= {
                f"{name}_norm": v.norm,
                f"{name}_nearest": v.nearest_tokens,
                f"{name}_cos": [round(c, 4) for c in v.cosine],
            }
        return out


def describe(lm: LoadedModel, e: torch.Tensor, m: torch.Tensor, k: int = 3) -> list[SolutionReport]:
    """Per solution (rows of e (S, d) and m (S, d)): norms of e and m and their k nearest vocabulary tokens."""
    reports = {}
    for name, vecs in (("e", e), ("m", m)):
        cos, ids = nearest_tokens(lm, vecs, k)  # (S, k) each
        reports[name] = [
            VectorReport(float(v.norm()), i.tolist(), lm.tokenizer.convert_ids_to_tokens(i.tolist()), c.tolist())
            for v, i, c in zip(vecs, ids, cos)
        ]
    return [SolutionReport(re, rm) for re, rm in zip(reports["e"], reports["m"])]
