"""Using a trained encoder: proto-tokens for texts in one pass (amortised_encode), optionally refined by the
fitter from there, and how good those vectors are against fitting from scratch (evaluate_encoder).

Shapes: T texts, D the LM's hidden size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import PrototokError
from ..fit import FitProgress, FitResult, fit_resolved
from ..layouts import DEFAULT_LAYOUT, Layout, get_layout
from ..models import LoadedModel
from ..protofile import ProtoTokens
from ..recipes import DEFAULT_RECIPE, Recipe, resolve_recipe
from ..tokens import tokenize
from .checkpoint import config_from_meta, load_encoder, read_meta
from .model import EncoderConfig, ProtoEncoder, one_pass_loss, token_batch
from .train import is_heldout, snippets


@torch.no_grad()
def predict_pairs(
    lm: LoadedModel, encoder: ProtoEncoder, token_lists: list[list[int]], batch_size: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """One encoder pass per batch: e (T, D) and m (T, D) on CPU, one row per text (a shared m repeated).

    A text longer than the encoder's max_len is read through its first max_len tokens: a prefix's solution is a
    start for the whole text (the capacity walks' warm start), so callers that refine from here accept it.
    """
    es, ms = [], []
    cut = [t[: encoder.cfg.max_len] for t in token_lists]
    for i in range(0, len(cut), batch_size):
        chunk = cut[i : i + batch_size]
        e, m = encoder(*token_batch(lm, chunk, encoder.cfg.reader, encoder.cfg.reader_layer))  # (b, D), (b or 1, D)
        es.append(e.float().cpu())
        ms.append(m.float().cpu().expand(len(chunk), -1))  # (b, D)
    return torch.cat(es), torch.cat(ms)


def _tokenize_for(lm: LoadedModel, cfg: EncoderConfig, texts: list[str], refine: bool) -> list[list[int]]:
    """Token ids of every text. Without refinement a text longer than the encoder reads is refused (all at once,
    before any work): one pass cannot be asked to write tokens it never read. With refinement it is read through
    its first max_len tokens and the fitter goes on from there (predict_pairs)."""
    token_lists = [tokenize(lm.tokenizer, t) for t in texts]
    if refine:
        return token_lists
    if too_long := [i for i, t in enumerate(token_lists) if len(t) > cfg.max_len]:
        raise PrototokError(
            f"text {too_long[0]} has {len(token_lists[too_long[0]])} tokens; this encoder reads at most "
            f"{cfg.max_len} (and {len(too_long)} text(s) in all are too long; with refinement, --refine, a longer "
            "text starts from the encoder's reading of its first tokens)"
        )
    return token_lists


@torch.no_grad()
def _score(
    lm: LoadedModel, e: torch.Tensor, m: torch.Tensor, token_lists: list[list[int]], lay: Layout, batch_size: int
) -> tuple[list[float], list[float]]:
    """Token accuracy and loss per text of given vectors e (T, D), m (T or 1, D): one forward per batch."""
    acc, loss = [], []
    for i in range(0, len(token_lists), batch_size):
        toks = token_lists[i : i + batch_size]
        mm = m if m.shape[0] == 1 else m[i : i + batch_size]  # (1 or b, D)
        lo, ok = one_pass_loss(lm, e[i : i + batch_size].to(lm.device), mm.to(lm.device), toks, lay)  # (b,)
        acc += [c / len(t) for c, t in zip(ok.cpu().tolist(), toks)]
        loss += lo.cpu().tolist()
    return acc, loss


def amortised_encode(
    lm: LoadedModel,
    ckpt: str | Path,
    texts: list[str],
    *,
    refine_steps: int = 0,
    recipe: Recipe | str | None = None,
    layout: str | Layout = DEFAULT_LAYOUT,
    seed: int = 0,
    batch_size: int = 8,
    progress: Callable[[FitProgress], None] | None = None,
) -> ProtoTokens:
    """Proto-tokens from one encoder pass per text; refine_steps > 0 then fits from there (a warm start).

    progress: the fitter's callback (prototok.fit.FitProgress), called once per encoder batch too. recipe: the
    refinement's (default: the per-text default, which keeps the encoder's output rather than redraw it).
    An entry point: the layout and the recipe are resolved here, once.
    """
    if refine_steps < 0:
        raise ValueError(f"refine_steps must be >= 0, got {refine_steps}")
    if isinstance(texts, str):
        texts = [texts]
    lay = get_layout(layout) if isinstance(layout, str) else layout
    rec = resolve_recipe(recipe)
    enc = load_encoder(ckpt, lm)
    cfg = enc.cfg
    if lay.name != cfg.lay.name:
        raise PrototokError(f"encoder {ckpt} was trained for layout '{cfg.layout}', not '{lay.name}'")
    token_lists = _tokenize_for(lm, cfg, list(texts), refine=refine_steps > 0)
    e, m = predict_pairs(lm, enc, token_lists, batch_size)  # (T, D), (T, D)
    acc0, loss0 = _score(lm, e, m, token_lists, lay, batch_size)
    if progress:
        mean = sum(acc0) / len(acc0)
        progress(FitProgress(0, len(texts) if not refine_steps else 0, len(texts), mean, sum(a >= 1.0 for a in acc0)))
    extra = {
        "encoder": str(ckpt),
        "encoder_step": read_meta(ckpt).get("step"),
        "refine_steps": refine_steps,
        "amortised_accuracy": acc0,
        "amortised_loss": loss0,
    }
    if refine_steps:
        rec = replace(rec, max_steps=refine_steps)
        res = fit_resolved(
            lm,
            token_lists,
            lay,
            rec,
            seed=seed,
            batch_size=batch_size,
            progress=progress,
            warm_start=list(zip(e, m)),
        )
        e, m = _stack(res)  # (T, D), (T, D)
        acc, steps = [r.accuracy for r in res], [r.steps for r in res]
        extra |= {"loss": [r.loss for r in res], "seconds": [r.seconds for r in res]}
    else:
        acc, steps = acc0, [0] * len(texts)
        extra |= {"loss": loss0, "seconds": [0.0] * len(texts)}
        if not cfg.predict_m:
            m = m[:1]  # (1, D): one shared m, stored once
    # Not methods.to_proto: the recipe column names the encoder ("encoder", "encoder+<recipe>"), not the
    # fitter's recipe key, and an unrefined file has no FitResults. Files written before keep their meaning.
    return ProtoTokens.for_model(
        lm,
        texts,
        e=e,
        m=m,
        layout=lay.name,
        lengths=[len(t) for t in token_lists],
        accuracy=acc,
        steps=steps,
        recipe=f"encoder+{rec.name}" if refine_steps else "encoder",
        seed=seed,
        extra=extra | {"share": "none"},
    )


# ---------------------------------------------------------------------------------------------- evaluation


def _stack(res: list[FitResult]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([r.e for r in res]), torch.stack([r.m for r in res])  # (T, D), (T, D)


def _median(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2


def _distances(a_e: torch.Tensor, a_m: torch.Tensor, b_e: torch.Tensor, b_m: torch.Tensor) -> dict:
    """Mean cosine and L2 between two sets of pairs, row by row: all (T, D)."""
    cos = torch.nn.functional.cosine_similarity
    return {
        "cos_e": cos(a_e, b_e, dim=1).mean().item(),
        "cos_m": cos(a_m, b_m, dim=1).mean().item(),
        "l2_e": (a_e - b_e).norm(dim=1).mean().item(),
        "l2_m": (a_m - b_m).norm(dim=1).mean().item(),
    }


def _by_length(lengths: list[int], acc: list[float], loss: list[float]) -> dict[str, dict]:
    """Amortised accuracy, loss and exact count per text length (tokens), shortest first."""
    by_len: dict[int, dict] = {}
    for n, a, lo in zip(lengths, acc, loss):
        row = by_len.setdefault(n, {"texts": 0, "accuracy": 0.0, "loss": 0.0, "exact": 0})
        row["texts"] += 1
        row["accuracy"] += a
        row["loss"] += lo
        row["exact"] += a >= 1.0
    for row in by_len.values():
        row["accuracy"] /= row["texts"]
        row["loss"] /= row["texts"]
    return {str(n): by_len[n] for n in sorted(by_len)}


def _fit_summary(rec: Recipe, runs: dict[str, list[FitResult]]) -> dict:
    """Steps to solve, warm vs cold, under one budget: an unsolved text counts as the whole budget."""
    budget = rec.max_steps
    summary: dict = {"recipe": rec.name, "lr": rec.lr, "max_steps": budget}
    for phase, res in runs.items():
        steps = [r.steps if r.solved else budget for r in res]
        solved = [r.steps for r in res if r.solved]
        summary[phase] = {
            "solved": len(solved),
            "mean_steps": sum(steps) / len(steps),  # unsolved texts count as the whole budget
            "median_steps": _median(steps),
            "mean_steps_solved": sum(solved) / len(solved) if solved else None,
            "accuracy": sum(r.accuracy for r in res) / len(res),
            # evaluations: forward+backward passes, the work whatever the optimiser (an L-BFGS step takes several)
            "median_evaluations": _median([r.steps_run for r in res]),
            "median_evaluations_solved": _median([r.steps_run for r in res if r.solved]),
        }
    cold_evals = summary["cold"]["median_evaluations"]
    summary["warm_over_cold_median_evaluations"] = (
        summary["warm"]["median_evaluations"] / cold_evals if cold_evals else None
    )
    cold_mean = summary["cold"]["mean_steps"]
    summary["warm_over_cold_steps"] = summary["warm"]["mean_steps"] / cold_mean if cold_mean else None
    both = [(w.steps, c.steps) for w, c in zip(runs["warm"], runs["cold"]) if w.solved and c.solved]
    summary["warm_over_cold_steps_both_solved"] = (
        sum(w for w, _ in both) / sum(c for _, c in both) if both and sum(c for _, c in both) else None
    )
    return summary


def eval_texts(
    lm: LoadedModel,
    ckpt: str | Path,
    texts: list[str],
    n: int,
    *,
    heldout: bool = True,
    min_len: int | None = None,
    max_len: int | None = None,
    seed: int = 0,
) -> list[str]:
    """Up to n evaluation texts for encoder ckpt, cut from `texts` at min_len..max_len tokens (default: the
    training range). heldout: only texts the run's hash split kept out of training (same fraction)."""
    meta = read_meta(ckpt)
    trained = meta.get("train", {})
    if heldout:
        texts = [t for t in dict.fromkeys(texts) if is_heldout(t, trained.get("holdout", 0.05))]
    lo = min_len or trained.get("min_len", 1)
    hi = max_len or config_from_meta(meta, str(ckpt)).max_len
    chosen = snippets(lm, texts, lo, hi, n, seed)
    if not chosen:
        split = "heldout" if heldout else "all"
        raise PrototokError(f"no {split} text has {lo} to {hi} tokens ({len(texts)} texts)")
    return chosen


def evaluate_encoder(
    lm: LoadedModel,
    ckpt: str | Path,
    texts: list[str],
    *,
    recipe: Recipe | str = DEFAULT_RECIPE,
    max_steps: int | None = None,
    fits: bool = True,
    seed: int = 0,
    batch_size: int = 8,
    progress: Callable[[str, FitProgress], None] | None = None,
) -> dict:
    """How good the amortised proto-tokens are, on held-out texts.

    - amortised token accuracy and loss, overall and by text length (with fits, a text longer than the
      encoder's max_len is read through its first max_len tokens: predict_pairs);
    - with fits: steps to 100% from the encoder's output (warm) and from the recipe's random init (cold),
      the same recipe and budget for both, and the warm/cold ratio (unsolved texts count as the budget);
    - cosine / L2 of the amortised (e, m) to the cold-optimised and to the warm-refined solutions.
    progress(phase, fit_progress) is called during the fits ("warm" or "cold"). An entry point: the recipe is
    resolved here, once, and the encoder's layout with its config.
    """
    rec = resolve_recipe(recipe)
    if max_steps is not None:
        rec = replace(rec, max_steps=max_steps)
    enc = load_encoder(ckpt, lm)
    cfg = enc.cfg
    token_lists = _tokenize_for(lm, cfg, list(texts), refine=fits)
    e, m = predict_pairs(lm, enc, token_lists, batch_size)  # (T, D), (T, D)
    acc, loss = _score(lm, e, m, token_lists, cfg.lay, batch_size)
    lengths = [len(t) for t in token_lists]
    out = {
        "encoder": str(ckpt),
        "encoder_step": read_meta(ckpt).get("step"),
        "texts": len(texts),
        "amortised": {
            "accuracy": sum(acc) / len(acc),
            "loss": sum(loss) / len(loss),
            "exact": sum(a >= 1.0 for a in acc),
            "by_length": _by_length(lengths, acc, loss),
        },
        "per_text": [{"tokens": n, "amortised_accuracy": a} for n, a in zip(lengths, acc)],
    }
    if not fits:
        return out
    runs = {}
    for phase, warm in (("warm", list(zip(e, m))), ("cold", None)):
        cb = (lambda p, phase=phase: progress(phase, p)) if progress else None
        runs[phase] = fit_resolved(
            lm,
            token_lists,
            cfg.lay,
            rec,
            seed=seed,
            batch_size=batch_size,
            progress=cb,
            warm_start=warm,
        )
    out["fits"] = _fit_summary(rec, runs)
    for row, w, c in zip(out["per_text"], runs["warm"], runs["cold"]):
        row |= {
            "warm_steps": w.steps,
            "warm_evaluations": w.steps_run,
            "warm_seconds": w.seconds,
            "warm_solved": w.solved,
            "cold_steps": c.steps,
            "cold_evaluations": c.steps_run,
            "cold_seconds": c.seconds,
            "cold_solved": c.solved,
        }
    ce, cm = _stack(runs["cold"])  # (T, D), (T, D)
    we, wm = _stack(runs["warm"])
    out["distance"] = {
        "amortised_to_cold": _distances(e, m, ce, cm),
        "amortised_to_warm": _distances(e, m, we, wm),
        "norms": {
            "amortised_e": e.norm(dim=1).mean().item(),
            "amortised_m": m.norm(dim=1).mean().item(),
            "cold_e": ce.norm(dim=1).mean().item(),
            "cold_m": cm.norm(dim=1).mean().item(),
        },
    }
    return out
