"""hidden_capacity's Token Gain and Information Gain (arXiv 2502.13063; its notebooks/ablations_analyze_results):
what a fit adds over the frozen model reading the text alone, per text.

    Information Gain = (original_loss - best_loss) x max_length     (nats)
    Token Gain       = (best_accuracy - original_accuracy) x max_length

original_*: the frozen model alone, teacher-forced, on the text as tokenized (BOS first when the tokenizer adds
one), mean over the positions it predicts; best_*: the fit's. max_length is the nominal length of its grid,
which counts the BOS: our length + 1 with a BOS, our length without (the notebook multiplies by it, not by the
number of predicted positions). A row's original values come from its stored H_LM (h_lm_bits, summed over
those positions) and lm_correct (hits there); its best from the row's own loss and accuracy (the kept
solution's; the notebook takes min(losses) and max(accuracies) of the run, which can come from two steps).
The notebook's table averages over the texts not reconstructed (best accuracy <= 0.99): gains_table does too.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Gains:
    information: float  # nats
    tokens: float


def max_length(row: dict) -> int:
    """hidden_capacity's max_length for a row: the BOS counts when the tokenizer adds one."""
    return row["length"] + (1 if row.get("h_lm_context") == "bos" else 0)


def predicted(row: dict) -> int:
    """Positions the frozen model predicts on the text alone (H_LM's): every token after a BOS, else all but
    the first."""
    return row["length"] if row.get("h_lm_context") == "bos" else row["length"] - 1


def gains(row: dict) -> Gains | None:
    """A row's gains, or None when it lacks what they need (rows stored before lm_correct, one-token texts)."""
    n = predicted(row)
    if row.get("lm_correct") is None or row.get("h_lm_bits") is None or n < 1:
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
