"""hidden_capacity's Token Gain and Information Gain (arXiv 2502.13063; its notebooks/ablations_analyze_results):
what a fit adds over the frozen model reading the text alone, per text.

    Information Gain = (original_loss - best_loss) x max_length     (nats)
    Token Gain       = (best_accuracy - original_accuracy) x max_length

original_*: the frozen model alone, teacher-forced, on the text as tokenized (BOS first when the tokenizer adds
one), mean over the positions it predicts; best_*: the fit's. max_length is the length of the text fitted as
train.py records it, which counts the BOS: the row's fitted tokens + 1 with a BOS, its tokens without (the
notebook multiplies by it, not by the number of predicted positions). The fitted tokens, not the row's grid
length: a drawn-length random text (random-glove-drawn, train.py --shuffled, whose max_length is the drawn
value) and a short text fitted whole are shorter than their grid length, and H_LM and lm_correct are summed
over their own tokens (experiments.texts.fitted_tokens). A row's original values come from its stored H_LM
(h_lm_bits, summed over those positions) and lm_correct (hits there); its best from the row's own loss and
accuracy (the kept solution's; the notebook takes min(losses) and max(accuracies) of the run, which can come
from two steps). The notebook's table averages over the texts not reconstructed (best accuracy <= 0.99):
gains_table does too.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ..experiments.texts import fitted_tokens


@dataclass(frozen=True)
class Gains:
    information: float  # nats
    tokens: float


def max_length(row: dict) -> int | None:
    """hidden_capacity's max_length for a row: its fitted tokens, and the BOS when the tokenizer adds one; None
    when the count is unknown (a drawing source's rows stored before it was kept)."""
    n = fitted_tokens(row)
    return None if n is None else n + (1 if row.get("h_lm_context") == "bos" else 0)


def predicted(row: dict) -> int | None:
    """Positions the frozen model predicts on the text alone (H_LM's): every token after a BOS, else all but
    the first; None when the count is unknown."""
    n = fitted_tokens(row)
    return None if n is None else (n if row.get("h_lm_context") == "bos" else n - 1)


def gains(row: dict) -> Gains | None:
    """A row's gains, or None when it lacks what they need (rows stored before lm_correct, a drawn text's count
    unknown, one-token texts)."""
    n = predicted(row)
    if row.get("lm_correct") is None or row.get("h_lm_bits") is None or n is None or n < 1:
        return None
    original_loss = row["h_lm_bits"] * math.log(2) / n
    original_accuracy = row["lm_correct"] / n
    length = max_length(row)
    return Gains((original_loss - row["loss"]) * length, (row["accuracy"] - original_accuracy) * length)


def summary(rows: list[dict], threshold: float) -> dict | None:
    """Mean and std of both gains over the rows not reconstructed (accuracy <= threshold), as the notebook's
    table; None when no such row has gains."""
    got = [g for r in rows if r["accuracy"] <= threshold and (g := gains(r)) is not None]
    if not got:
        return None

    def mean_std(xs: list[float]) -> tuple[float, float]:
        return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)

    return {
        "texts": len(got),
        "information": mean_std([g.information for g in got]),
        "tokens": mean_std([g.tokens for g in got]),
    }
