"""The papers' published numbers, shown beside ours when the model matches.

A model matches by the last part of its name, lower-case, so a hub id and a local folder of the same model
find the same number. Capacity = the longest text (tokens) reconstructed at >= 0.99 accuracy, layout
e m^(N-1), nothing shared, from the capacity results of arXiv 2505.21189 (one-step paper) as quoted in this
project's issue 3; their table number is to be checked against the PDF. Numbers we could not confirm are left
out rather than guessed.
"""

from __future__ import annotations

import re

PAPER: dict[str, dict[str, float]] = {
    "capacity": {
        "pythia-160m": 128,
        "llama-3.2-1b": 362,
        "llama-3.1-8b": 724,
    },
}
PAPER_LAYOUT = "e m^(N-1)"  # the setting the published capacities were measured in, with sharing "none"


def paper_number(table: str, model: str) -> float | None:
    """The published number of `table` for this model, or None."""
    name = re.split(r"[/\\]", model.rstrip("/\\"))[-1].lower()
    return PAPER.get(table, {}).get(name)


def paper_capacity(model: str, layout: str, sharing: str) -> float | None:
    """The published capacity for a setting, only when it is the one the paper measured."""
    return paper_number("capacity", model) if layout == PAPER_LAYOUT and sharing == "none" else None
