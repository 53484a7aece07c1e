"""The papers' published numbers, shown only beside rows measured the same way.

A number is a `Reference`: which of Table 3's six models (Pythia-160M/410M/1.4B, Llama-3.2-1B/3B, Llama-3.1-8B),
which data (PG-19 and fanfics are the natural texts, "random" the random word sequences), what it measures
(capacity in tokens, or H_LM in nats), and whether m was shared. A row setting gets the number only when it
was measured as the paper measured it: layout e m^(N-1), the paper's recipe (recipe key "paper"), the same
sharing kind, the same data and the paper's statistic (maximum values); any other setting is ours, and the
report says so.

Models match by id, robustly: the last part of a hub id or local path, lower-case, with a leading "meta-"
dropped, so "meta-llama/Meta-Llama-3.1-8B", "meta-llama/Llama-3.1-8B", "EleutherAI/pythia-160m" and
"/models/pythia-160m/" all find their model; a variant (e.g. "pythia-160m-deduped", "-instruct") does not.

Only numbers checked against the paper's text belong in PAPER; until its Table 3 is entered here, PAPER is
empty and the report prints "-".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PAPER_LAYOUT = "e m^(N-1)"  # the layout the published capacities were measured in
PAPER_RECIPE = "paper"  # recipe key of the paper's optimiser settings (recipes.RECIPES["paper"], no overrides)
PAPER_STATISTIC = "max"  # the paper reports maximum values (experiments.capacity.CapacitySummary.capacity)
MODELS = ("pythia-160m", "pythia-410m", "pythia-1.4b", "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b")
SOURCES = ("pg19", "fanfics", "random")


@dataclass(frozen=True)
class Reference:
    model: str  # one of MODELS
    source: str  # one of SOURCES
    quantity: str  # "capacity" (tokens) or "h_lm" (nats, summed over the text)
    value: float
    share: str = "none"  # "none", or "m": one m shared across texts
    where: str = "Table 3"  # where in arXiv 2505.21189 (v2)


PAPER: tuple[Reference, ...] = ()  # verified numbers only (see the module docstring)


def model_id(model: str) -> str | None:
    """One of MODELS for a hub id or local path, or None."""
    name = re.split(r"[/\\]", model.strip().rstrip("/\\"))[-1].lower()
    name = name.removeprefix("meta-")
    return name if name in MODELS else None


def source_id(source: str) -> str | None:
    """One of SOURCES for a data source key (e.g. "pg19", "hf:pg19@seed=1", "random", "fanfics"), or None: other
    data (wiki, files) is not the paper's, so no published number applies."""
    name = source.split("@")[0].lower()
    for sid in SOURCES:
        if sid in name.replace("-", "").replace("_", ""):
            return sid
    return None


def paper_value(quantity: str, model: str, source: str, share: str = "none") -> float | None:
    """The published number for this model, data and sharing kind, or None."""
    mid, sid = model_id(model), source_id(source)
    for ref in PAPER:
        if (ref.quantity, ref.model, ref.source, ref.share) == (quantity, mid, sid, share):
            return ref.value
    return None


def paper_number(table: str, model: str, source: str = "pg19", share: str = "none") -> float | None:
    """The published `table` ("capacity" or "h_lm") for this model (on PG-19 unless told), or None."""
    return paper_value(table, model, source, share)


def measured_as_paper(layout: str, recipe: str, statistic: str) -> bool:
    """Whether a setting was measured as the paper measured its Table 3 numbers."""
    return layout == PAPER_LAYOUT and recipe == PAPER_RECIPE and statistic == PAPER_STATISTIC


def paper_capacity(
    model: str, source: str, layout: str, sharing: str, recipe: str, statistic: str = PAPER_STATISTIC
) -> float | None:
    """The published capacity for a setting, only when it is measured the way the paper measured it."""
    if not measured_as_paper(layout, recipe, statistic):
        return None
    return paper_value("capacity", model, source, sharing.split("/")[0])


def paper_h_lm(model: str, source: str, layout: str, sharing: str, recipe: str, statistic: str) -> float | None:
    """The published H_LM (nats) beside the capacity, under the same condition."""
    if not measured_as_paper(layout, recipe, statistic):
        return None
    return paper_value("h_lm", model, source, sharing.split("/")[0])
