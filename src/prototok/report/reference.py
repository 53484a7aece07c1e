"""The papers' published numbers, and the one rule for setting them beside prototok's rows.

Two papers: [OS] = arXiv 2505.21189 v2 (EMNLP 2025), "Exploring the Hidden Capacity of LLMs for One-Step Text
Generation", the method prototok implements; [CR] = arXiv 2502.13063, "Cramming 1568 Tokens into a Single Vector
and Back Again", its autoregressive baseline. Every number below is a `Reference` tagged with its paper and table
(`Reference.where`), copied from the papers' tables: [OS] Table 3 (capacity Ctokens and H_LM in nats, mean +- std,
per model, dataset and whether m is shared), Table 4 (seconds to fit one text), Table 1 (layouts), Table 2 (one
vector shared by a group), and [CR] Table 1 (decoding capacity, token gain, information gain).

A number is printed only beside rows measured the same way, and every check that fails is said: a `Beside` is
either the paper's number or "not comparable: <why>" (the first reason that fails). What is checked: the model
(one of the papers' six, matched by id), the data (its kind and cut, EXACTLY: below), the method and its layout,
the recipe (`paper` with no override for one-pass, `hc-cram(num_mem=1)` for the baseline), the sharing kind, the
statistic, and where it matters the length grid, the seeds, the batch and the device.

Data is matched by the source key rows carry, exactly, never by a substring (`generated:...pg19...` is not PG-19,
and `random` is not the papers' random texts). The papers' datasets as prototok sources:

- PG-19 = `second-half:hf:yurakuratov/pg19_valid_1k_chunks`, fanfics = `second-half:hf:yurakuratov/fanfics_1k_chunks`:
  the chunks [CR]'s preprocessing notebooks made, cut as its train.py cuts them (second half of sentences).
- [OS] Table 3's "Random" = `random-glove`: GloVe top-100k words at every grid length. Its capacities are grid
  values (90, 256, 362, 512; one 92) where drawn lengths would give off-grid counts, so its random texts are read
  as fixed-length ones; H_LM / Ctokens ~ 6 nats per token agrees with GloVe words.
- [CR] Table 1's "Random" = `random-glove-drawn`: [CR]'s code (train.py --shuffled) draws each text's length in
  2..L and its analysis reads that drawn length; its random capacities are off-grid counts (65, 72, 139, 316,
  460, 792), the largest drawn length reconstructed, i.e. prototok's count statistic (C_tokens). [CR] counts the
  BOS in that length (Llama: theirs = ours + 1).
- [OS]'s "PG-19 (gen)" has no prototok source: `generated:` continues a 64-token context, EOS suppressed and cut
  at a sentence, where the paper samples a continuation as long as its context.

A data seed other than 0 (`@seed=S`) draws other texts of the same set and `@min_chars=C` only how much text is
kept, so both still match; any other loading option does not.

Models match by id, robustly: the last part of a hub id or local path, lower-case, with a leading "meta-"
dropped, so "meta-llama/Meta-Llama-3.1-8B", "meta-llama/Llama-3.1-8B", "EleutherAI/pythia-160m" and
"/models/pythia-160m/" all find their model; a variant (e.g. "pythia-160m-deduped", "-instruct") does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PAPERS = {"OS": "arXiv 2505.21189 v2", "CR": "arXiv 2502.13063"}
PAPER_LAYOUT = "e m^(N-1)"  # the layout the published capacities were measured in
PAPER_RECIPE = "paper"  # recipe key of the paper's optimiser settings (recipes.RECIPES["paper"], no overrides)
PAPER_STATISTIC = "max"  # the paper reports maximum values (experiments.capacity.CapacitySummary.capacity)
CR_RECIPE = "hc-cram(num_mem=1)"  # [CR] Table 1: one [mem] vector, its optimiser exactly
MODELS = ("pythia-160m", "pythia-410m", "pythia-1.4b", "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b")
MODEL_NAMES = ("Pythia-160M", "Pythia-410M", "Pythia-1.4B", "Llama-3.2-1B", "Llama-3.2-3B", "Llama-3.1-8B")

PG19 = "second-half:hf:yurakuratov/pg19_valid_1k_chunks"
FANFICS = "second-half:hf:yurakuratov/fanfics_1k_chunks"
# (paper, dataset) -> the prototok source key that reproduces its texts (module docstring); None: none does
DATASETS: dict[tuple[str, str], str | None] = {
    ("OS", "PG-19"): PG19,
    ("OS", "Fanfics"): FANFICS,
    ("OS", "Random"): "random-glove",
    ("OS", "PG-19 (gen)"): None,
    ("CR", "PG-19"): PG19,
    ("CR", "Fanfics"): FANFICS,
    ("CR", "Random"): "random-glove-drawn",
}
KEPT_OPTIONS = ("seed", "min_chars")  # source-key options that keep the texts the papers' kind (docstring)

# [OS] Table 3's length grid (powers of sqrt 2) and [CR] Table 1's
OS_GRID = (4, 5, 8, 11, 16, 22, 32, 45, 64, 90, 128, 181, 256, 362, 512, 724, 1024, 1448)
CR_GRID = (64, 80, 96, 128, 160, 192, 256, 384, 512, 768, 1024, 1280, 1568, 2048, 2560, 3072)


@dataclass(frozen=True)
class Reference:
    """One published number: which paper and table, which model and dataset, what it measures, mean (+- std)."""

    paper: str  # "OS" or "CR" (PAPERS)
    table: str  # e.g. "Table 3"
    model: str  # one of MODELS
    dataset: str  # the paper's name for its data: "PG-19", "Fanfics", "Random", "PG-19 (gen)"
    quantity: str  # "capacity" (tokens), "h_lm" (nats), "seconds", "accuracy", "token_gain", "information_gain"
    value: float | None  # None where the paper prints "-" (Table 4: beyond capacity)
    std: float | None = None  # where the paper prints mean +- std
    share: str = "none"  # "none", or the vector shared across texts: "m" (Table 3), "m" or "e" (Table 2)
    length: int | None = None  # N (Tables 1, 2, 4)
    layout: str | None = None  # Table 1: prototok's name of the paper's layout
    group: int | None = None  # Table 2: texts sharing the vector
    statistic: str = ""  # Table 2: "max" (best of 10 seeds per text) or "avg" (over seeds and texts)
    note: str = ""  # what the table leaves open (Table 2 names no model)

    @property
    def where(self) -> str:
        return f"[{self.paper}] {self.table}"

    def text(self, spec: str = "g") -> str:
        """The number as printed: mean +- std when the paper gives both, "-" where it prints "-"."""
        if self.value is None:
            return "-"
        return format(self.value, spec) + (f" +- {format(self.std, spec)}" if self.std is not None else "")


@dataclass(frozen=True)
class Beside:
    """What a report cell shows beside a measured value: the paper's number, or why there is none."""

    ref: Reference | None = None
    why: str = ""  # non-empty exactly when ref is None

    def cell(self, spec: str = "g") -> str:
        if self.ref is None:
            return f"not comparable: {self.why}"
        return f"{self.ref.text(spec)} ({self.ref.where})"

    @property
    def value(self) -> float | None:
        return None if self.ref is None else self.ref.value


# ---------------------------------------------------------------------------------------------- the numbers

# [OS] Table 3: (dataset, share) -> Ctokens per model (MODELS order), then H_LM mean and std (nats) per model
_T3: dict[tuple[str, str], tuple[tuple[int, ...], tuple[tuple[float, float], ...]]] = {
    ("Random", "none"): (
        (90, 92, 90, 256, 362, 512),
        ((507.5, 105.9), (377.1, 133.1), (470.7, 103.1), (1551.3, 159.5), (2193.4, 190.2), (2974.4, 298.3)),
    ),
    ("Random", "m"): (
        (45, 22, 45, 181, 256, 256),
        ((247.9, 32.0), (91.1, 30.8), (231.0, 37.9), (947.7, 155.0), (1292.2, 217.4), (1309.4, 234.6)),
    ),
    ("Fanfics", "none"): (
        (128, 128, 131, 362, 512, 724),
        ((358.9, 73.3), (395.4, 97.8), (261.0, 56.4), (1107.6, 129.1), (1408.4, 179.5), (1763.3, 280.2)),
    ),
    ("Fanfics", "m"): (
        (45, 45, 45, 181, 288, 362),
        ((145.0, 26.2), (82.3, 28.1), (147.9, 29.7), (576.4, 90.4), (835.9, 121.7), (1112.8, 168.6)),
    ),
    ("PG-19", "none"): (
        (128, 167, 128, 362, 512, 724),
        ((388.4, 66.4), (408.8, 96.3), (298.4, 77.4), (993.8, 183.4), (1346.0, 218.4), (1659.8, 344.5)),
    ),
    ("PG-19", "m"): (
        (45, 32, 64, 181, 256, 362),
        ((156.0, 33.9), (88.1, 30.3), (156.0, 30.2), (456.5, 56.5), (826.1, 117.6), (832.3, 171.0)),
    ),
    ("PG-19 (gen)", "none"): (
        (128, 181, 128, 362, 512, 724),
        ((354.1, 72.0), (379.2, 82.6), (277.6, 71.3), (927.3, 103.4), (1266.6, 125.9), (1653.1, 211.4)),
    ),
    ("PG-19 (gen)", "m"): (
        (45, 32, 64, 181, 362, 362),
        ((153.0, 17.8), (106.9, 38.5), (197.1, 39.3), (478.7, 85.7), (788.6, 130.8), (771.7, 143.0)),
    ),
}

# [OS] Table 4: seconds to fit one text's proto-tokens at N = 32 ... 512, averaged over datasets; None = "-"
# (beyond capacity). Timed without sharing: its "-" cells match the non-shared capacities of Table 3.
T4_LENGTHS = (32, 64, 128, 256, 512)
_T4: dict[str, tuple[float | None, ...]] = {
    "pythia-160m": (6, 25, 68, None, None),
    "pythia-410m": (10, 21, 106, None, None),
    "pythia-1.4b": (10, 66, 129, None, None),
    "llama-3.2-1b": (11, 15, 27, 87, None),
    "llama-3.2-3b": (14, 18, 28, 78, 261),
    "llama-3.1-8b": (16, 20, 29, 60, 215),
}

# [OS] Table 1: Llama-3.2-1B, 50 PG-19 texts, token accuracy mean +- std at N = 1, 2, 4, 256; keyed by prototok's
# name of each layout ([e] x N = e^N, [e] x N/2 [m] x N/2 = e^(N/2) m^(N/2), [e, m] x N/2 = (e m)^(N/2),
# [e] [m] x N = e m^N, [e] [m] x (N-1) = e m^(N-1))
T1_LENGTHS = (1, 2, 4, 256)
_T1: dict[str, tuple[tuple[float, float], ...]] = {
    "e^N": ((1.00, 0.00), (0.45, 0.31), (0.17, 0.18), (0.01, 0.01)),
    "e^(N/2) m^(N/2)": ((1.00, 0.00), (1.00, 0.00), (0.12, 0.13), (0.01, 0.01)),
    "(e m)^(N/2)": ((1.00, 0.00), (1.00, 0.00), (1.00, 0.00), (0.17, 0.34)),
    "e m^N": ((1.00, 0.00), (1.00, 0.00), (1.00, 0.00), (0.97, 0.15)),
    "e m^(N-1)": ((1.00, 0.00), (1.00, 0.00), (1.00, 0.00), (0.99, 0.10)),
}

# [OS] Table 2: 256 PG-19 texts at N = 256, 10 seeds; (shared vector, statistic) -> mean +- std at groups 1, 16,
# 256 ("max": best of the 10 seeds per text, averaged over texts; "avg": over seeds and texts). The model is
# not named; Llama-3.2-1B (the model of Table 1) is assumed. Groups 4 and 64 were run but not printed.
T2_LENGTH, T2_GROUPS, T2_SEEDS = 256, (1, 16, 256), 10
T2_NOTE = "the paper does not name Table 2's model; Llama-3.2-1B assumed"
_T2: dict[tuple[str, str], tuple[tuple[float, float], ...]] = {
    ("e", "max"): ((1.00, 0.00), (0.99, 0.01), (0.99, 0.02)),
    ("e", "avg"): ((0.98, 0.08), (0.90, 0.17), (0.86, 0.20)),
    ("m", "max"): ((1.00, 0.00), (1.00, 0.00), (1.00, 0.01)),
    ("m", "avg"): ((0.98, 0.07), (0.86, 0.19), (0.83, 0.18)),
}

# [CR] Table 1: one trained [mem] vector, per model: PG-19 (Max, Gain, Info), Fanfics Max, Random (Max, Gain,
# Info); Max in tokens, Gain (token gain) and Info (information gain, nats) mean +- std over texts
_CR: dict[str, tuple] = {
    "pythia-160m": (80, (70.9, 11.0), (396.4, 46.0), 80, 65, (61.3, 6.6), (500.8, 38.9)),
    "pythia-410m": (96, (81.3, 12.0), (431.4, 51.6), 96, 72, (76.9, 8.7), (630.4, 65.2)),
    "pythia-1.4b": (160, (158.0, 29.1), (792.8, 143.4), 192, 139, (144.4, 17.5), (1108.2, 136.2)),
    "llama-3.2-1b": (512, (426.2, 79.2), (2119.9, 364.8), 512, 316, (294.9, 64.8), (2265.2, 498.7)),
    "llama-3.2-3b": (1024, (720.3, 80.2), (3292.2, 320.0), 1024, 460, (456.9, 72.1), (3382.6, 585.2)),
    "llama-3.1-8b": (1568, (1094.1, 127.6), (4865.7, 546.6), 1568, 792, (623.2, 97.3), (4541.2, 758.6)),
}


def _build() -> tuple[Reference, ...]:
    out: list[Reference] = []
    for (dataset, share), (caps, hlms) in _T3.items():
        for model, cap, (mean, std) in zip(MODELS, caps, hlms):
            out.append(Reference("OS", "Table 3", model, dataset, "capacity", cap, share=share))
            out.append(Reference("OS", "Table 3", model, dataset, "h_lm", mean, std, share=share))
    for model, secs in _T4.items():
        for n, s in zip(T4_LENGTHS, secs):
            out.append(Reference("OS", "Table 4", model, "PG-19, Fanfics, Random", "seconds", s, length=n))
    for layout, cells in _T1.items():
        for n, (mean, std) in zip(T1_LENGTHS, cells):
            out.append(
                Reference("OS", "Table 1", "llama-3.2-1b", "PG-19", "accuracy", mean, std, length=n, layout=layout)
            )
    for (share, stat), cells in _T2.items():
        for g, (mean, std) in zip(T2_GROUPS, cells):
            out.append(
                Reference("OS", "Table 2", "llama-3.2-1b", "PG-19", "accuracy", mean, std, share=share,
                          length=T2_LENGTH, group=g, statistic=stat, note=T2_NOTE)
            )  # fmt: skip
    for model, (pg_max, pg_gain, pg_info, ff_max, rnd_max, rnd_gain, rnd_info) in _CR.items():
        for dataset, cap, gain, info in (("PG-19", pg_max, pg_gain, pg_info), ("Random", rnd_max, rnd_gain, rnd_info)):
            out.append(Reference("CR", "Table 1", model, dataset, "capacity", cap))
            out.append(Reference("CR", "Table 1", model, dataset, "token_gain", *gain))
            out.append(Reference("CR", "Table 1", model, dataset, "information_gain", *info))
        out.append(Reference("CR", "Table 1", model, "Fanfics", "capacity", ff_max))
    return tuple(out)


PAPER: tuple[Reference, ...] = _build()


# ---------------------------------------------------------------------------------------------- matching


def model_id(model: str) -> str | None:
    """One of MODELS for a hub id or local path, or None."""
    name = re.split(r"[/\\]", model.strip().rstrip("/\\"))[-1].lower()
    name = name.removeprefix("meta-")
    return name if name in MODELS else None


def base_source(source: str) -> str | None:
    """A source key without the options that keep its texts the papers' kind (KEPT_OPTIONS), or None when it
    carries another option (e.g. generated continuations per context)."""
    base, _, opts = source.partition("@")
    names = [o.partition("=")[0] for o in opts.split(",")] if opts else []
    return base if all(n in KEPT_OPTIONS for n in names) else None


def dataset_of(paper: str, source: str) -> str | None:
    """The paper's dataset name for a source key, matched exactly (DATASETS), or None."""
    base = base_source(source)
    return next((d for (p, d), key in DATASETS.items() if p == paper and key is not None and key == base), None)


def source_id(source: str) -> str | None:
    """[OS]'s dataset for a source key ("PG-19", "Fanfics", "Random"), exactly, or None."""
    return dataset_of("OS", source)


def data_reason(paper: str, source: str) -> str:
    """Why a source's texts are not one of the paper's datasets: one line naming what the paper used."""
    base = source.partition("@")[0]
    own = {d: k for (p, d), k in DATASETS.items() if p == paper and k is not None}
    if base_source(source) is None:
        return f"data {source}: its loading options ({source.partition('@')[2]}) make other texts"
    if base.startswith("generated:"):
        return (
            "prototok's generated: continues a 64-token context (EOS suppressed, cut at a sentence); the paper's "
            "PG-19 (gen) samples a continuation as long as its context"
        )
    if base == "random":
        return f"`random` draws Debian's wamerican words; the papers' random texts are GloVe words ({own['Random']})"
    if base.startswith("random-glove"):
        if paper == "CR":
            return f"{base} cuts every text at the grid length; [CR] draws each length in 2..L ({own['Random']})"
        return f"{base} draws each length; [OS] Table 3's random capacities are grid values ({own['Random']})"
    if f"second-half:{base}" in own.values():
        return f"{base} is not the papers' cut (second-half:{base} is)"
    return f"data {source} is not one of the paper's ({', '.join(f'{d}: {k}' for d, k in own.items())})"


def _reason(checks: list[tuple[bool, str]]) -> str:
    return next((why for ok, why in checks if not ok), "")


def _find(**want) -> Reference | None:
    return next((r for r in PAPER if all(getattr(r, k) == v for k, v in want.items())), None)


def _model_check(model: str, where: str) -> tuple[bool, str]:
    return model_id(model) is not None, f"model {model} is not one of {where}'s ({', '.join(MODEL_NAMES)})"


def _recipe_check(recipe: str, want: str) -> tuple[bool, str]:
    return recipe == want, f"recipe {recipe} (the paper's: {want})"


def table3(
    quantity: str,
    *,
    model: str,
    source: str,
    layout: str,
    sharing: str,
    recipe: str,
    statistic: str,
    lengths=(),
    counted: bool = True,
) -> Beside:
    """[OS] Table 3's capacity (Ctokens) or H_LM for a one-pass capacity setting, when measured as the paper
    measured it: one of its models and datasets, layout e m^(N-1), recipe `paper`, no sharing or a shared m,
    its statistic (maximum values), lengths on its grid, and every row's fitted token count recorded (the
    count statistic: Ctokens counts a text shorter than its grid length fitted whole)."""
    kind = sharing.split("/")[0]
    dataset = dataset_of("OS", source)
    off = sorted(set(lengths) - set(OS_GRID))
    why = _reason(
        [
            _model_check(model, "[OS] Table 3"),
            (dataset is not None, data_reason("OS", source)),
            (layout == PAPER_LAYOUT, f"layout {layout} (the paper's: {PAPER_LAYOUT})"),
            _recipe_check(recipe, PAPER_RECIPE),
            (kind in ("none", "m"), f"a shared {kind} (Table 3 shares m or nothing)"),
            (statistic == PAPER_STATISTIC, f"statistic {statistic} (the paper's: maximum values)"),
            (not off, f"lengths {', '.join(map(str, off))} are off the paper's grid"),
            (counted, "rows stored before fitted token counts were recorded (Ctokens counts short texts whole)"),
        ]
    )
    if why:
        return Beside(why=why)
    return Beside(_find(paper="OS", table="Table 3", model=model_id(model), dataset=dataset, quantity=quantity,
                        share=kind))  # fmt: skip


def cramming_table1(
    quantity: str, *, model: str, source: str, as_hidden_capacity: bool, sharing: str, recipe: str, lengths=()
) -> Beside:
    """[CR] Table 1's capacity, token gain or information gain for a cramming-baseline setting: one of its
    models, PG-19 or fanfics (capacity: its statistic, the largest grid length whose mean best accuracy is
    >= 0.99, so lengths from 64 on must be on its grid) or its drawn-length random texts (capacity: the largest
    drawn length reconstructed, prototok's count), the baseline as hidden_capacity runs it (`as_hidden_capacity`:
    the method's `hc` flag, not the sink variant) with one [mem]."""
    dataset = dataset_of("CR", source)
    off = sorted(n for n in set(lengths) - set(CR_GRID) if n >= CR_GRID[0])
    on_grid = dataset == "Random" or quantity != "capacity" or not off
    why = _reason(
        [
            (as_hidden_capacity, "prototok's sink variant, not [CR]'s [mem, BOS, text]"),
            _model_check(model, "[CR] Table 1"),
            (dataset is not None, data_reason("CR", source)),
            _recipe_check(recipe, CR_RECIPE),
            (sharing == "none", "a shared vector ([CR] fits one [mem] per text)"),
            (on_grid, f"lengths {', '.join(map(str, off))} are off [CR]'s grid ({', '.join(map(str, CR_GRID))})"),
        ]
    )  # fmt: skip
    if why:
        return Beside(why=why)
    ref = _find(paper="CR", table="Table 1", model=model_id(model), dataset=dataset, quantity=quantity)
    return Beside(ref) if ref else Beside(why=f"[CR] Table 1 prints no {quantity} for {dataset}")


def table1(*, model: str, source: str, recipe: str, layout: str, length: int, seeds: int) -> Beside:
    """[OS] Table 1's mean +- std accuracy for a layouts row group: Llama-3.2-1B, PG-19, recipe `paper`, one of
    N = 1, 2, 4, 256 (std over texts: one seed per text)."""
    why = _reason(
        [
            (model_id(model) == "llama-3.2-1b", f"model {model} (Table 1's: Llama-3.2-1B)"),
            (dataset_of("OS", source) == "PG-19", f"data {source} (Table 1's: PG-19, {PG19})"),
            _recipe_check(recipe, PAPER_RECIPE),
            (length in T1_LENGTHS, f"N = {length} (Table 1 prints N = 1, 2, 4, 256)"),
            (seeds == 1, f"{seeds} seeds per text (the std is over texts, one fit each)"),
        ]
    )  # fmt: skip
    if why:
        return Beside(why=why)
    ref = _find(paper="OS", table="Table 1", layout=layout, length=length)
    return Beside(ref) if ref else Beside(why=f"layout {layout} is not one of Table 1's")


def table2(
    *, model: str, source: str, recipe: str, layout: str, shared: str, group: int, length: int, statistic: str,
    seeds: int,
) -> Beside:  # fmt: skip
    """[OS] Table 2's accuracy ("max" over seeds or "avg") for a sharing row group: PG-19, recipe `paper`, layout
    e m^(N-1), N = 256, groups 1, 16, 256, 10 seeds; the model is not named (T2_NOTE)."""
    why = _reason(
        [
            (model_id(model) == "llama-3.2-1b", f"model {model} ({T2_NOTE})"),
            (dataset_of("OS", source) == "PG-19", f"data {source} (Table 2's: PG-19, {PG19})"),
            _recipe_check(recipe, PAPER_RECIPE),
            (layout == PAPER_LAYOUT, f"layout {layout} (the paper's: {PAPER_LAYOUT})"),
            (length == T2_LENGTH, f"N = {length} (Table 2's: {T2_LENGTH})"),
            (group in T2_GROUPS, f"group {group} (Table 2 prints groups 1, 16, 256)"),
            (seeds == T2_SEEDS or statistic == "avg", f"max over {seeds} seeds (Table 2's: {T2_SEEDS})"),
        ]
    )
    if why:
        return Beside(why=why)
    return Beside(_find(paper="OS", table="Table 2", share=shared, group=group, statistic=statistic))


def table4(
    *, model: str, experiment: str, recipe: str, layout: str, sharing: str, length: int, batch: float, device: str
) -> Beside:
    """[OS] Table 4's seconds for a timing line: one of its models, capacity rows (its texts, averaged over
    datasets), recipe `paper`, layout e m^(N-1), no sharing (its "-" cells match the non-shared capacities),
    one text fitted alone, on a GPU, N = 32 ... 512."""
    why = _reason(
        [
            _model_check(model, "[OS] Table 4"),
            (experiment == "capacity", f"{experiment} rows (Table 4 times the capacity texts)"),
            _recipe_check(recipe, PAPER_RECIPE),
            (layout == PAPER_LAYOUT, f"layout {layout} (the paper's: {PAPER_LAYOUT})"),
            (sharing == "none", "a shared vector (Table 4 is timed without sharing)"),
            (batch == 1, f"batch {batch:g} (Table 4: one text fitted alone)"),
            (device.startswith("cuda"), f"timed on {device} (Table 4: one GPU)"),
            (length in T4_LENGTHS, f"N = {length} (Table 4 prints N = 32 ... 512)"),
        ]
    )
    if why:
        return Beside(why=why)
    return Beside(_find(paper="OS", table="Table 4", model=model_id(model), length=length))


def best_capacity(model: str) -> Reference | None:
    """Fig. 1's number for a model: its largest non-shared Ctokens over [OS] Table 3's datasets."""
    refs = [
        r
        for r in PAPER
        if r.table == "Table 3" and r.quantity == "capacity" and r.share == "none" and r.model == model_id(model)
    ]
    return max(refs, key=lambda r: r.value or 0, default=None)


def paper_number(table: str, model: str, source: str = PG19, share: str = "none") -> float | None:
    """[OS] Table 3's `table` ("capacity" or "h_lm", mean) for this model and exact source key (PG-19 unless
    told), or None."""
    dataset = source_id(source)
    ref = _find(paper="OS", table="Table 3", model=model_id(model), dataset=dataset, quantity=table, share=share)
    return None if ref is None else ref.value


def measured_as_paper(layout: str, recipe: str, statistic: str) -> bool:
    """Whether a one-pass setting used the paper's layout, recipe and statistic (Table 3's method)."""
    return layout == PAPER_LAYOUT and recipe == PAPER_RECIPE and statistic == PAPER_STATISTIC


def paper_capacity(
    model: str, source: str, layout: str, sharing: str, recipe: str, statistic: str = PAPER_STATISTIC
) -> float | None:
    """[OS] Table 3's capacity for a one-pass setting measured as the paper measured it (table3), or None."""
    return table3(
        "capacity", model=model, source=source, layout=layout, sharing=sharing, recipe=recipe, statistic=statistic
    ).value
