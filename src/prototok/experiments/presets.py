"""`prototok reproduce PRESET`: the existing experiments with the papers' settings: table1, table2, table3 and
table3-shared (arXiv 2505.21189 v2, one-pass, recipe `paper` exactly; counts the paper does not state are taken
from its baseline's code, yurakuratov/hidden_capacity) and cram-table1 (arXiv 2502.13063's Table 1, the
baseline as that code runs it with one [mem]).

A Preset only fixes values: which experiment, its config, the sample counts (random-word texts apart: the
cramming code ran 100 of them where it ran 50 natural texts), the method and its recipe, the default data and
the precision per model family. It fits nothing itself: the CLI builds a Setup from it and
calls run_experiment, as every experiment command does. `describe` lists every fixed value (printed by the
command and by --dry-run, and documented in the README's "Reproducing the papers").
"""

from __future__ import annotations

from dataclasses import dataclass

from ..baselines.cramming import Cramming
from ..layouts import DEFAULT_LAYOUT, LAYOUTS
from ..methods import METHODS, OnePass
from ..recipes import get_recipe
from .capacity import LENGTHS, CapacityConfig
from .layouts import LAYOUT_LENGTHS, LayoutsConfig
from .sharing import GROUPS, SharingConfig

PAPER_RECIPE = "paper"
# PG-19 chunks as hidden_capacity made them (notebooks/preprocess_pg19.ipynb), cut as its train.py cuts them
PAPER_DATA = ("second-half:hf:yurakuratov/pg19_valid_1k_chunks",)
RANDOM_SAMPLES = 100  # random-word texts per length in the cramming code's scripts (50 natural texts)
# [CR] Table 1's length grid (its scripts' lengths); its random texts draw a length in 2..L per text
CR_LENGTHS = (64, 80, 96, 128, 160, 192, 256, 384, 512, 768, 1024, 1280, 1568, 2048, 2560, 3072)


@dataclass(frozen=True)
class Preset:
    name: str  # table1, table2, table3
    title: str
    experiment: str  # a key of experiments.EXPERIMENTS
    config: object  # its config dataclass, fully fixed
    samples: int  # texts per data source
    notes: tuple[str, ...] = ()  # what we assumed where the paper's text was not at hand
    random_samples: int = RANDOM_SAMPLES  # texts per random-word source (sources.is_random)
    method: str = OnePass.name  # a key of methods.METHODS
    method_options: tuple[tuple[str, object], ...] = (("recipe", PAPER_RECIPE),)  # its from_options
    data: tuple[str, ...] = PAPER_DATA  # the default --data

    def make_method(self):
        """The method the preset fits with, resolved from METHODS and method_options."""
        return METHODS[self.method].from_options(**dict(self.method_options))

    def describe(self, model: str, device_type: str) -> list[str]:
        """Every value the preset fixes, one per line."""
        cfg = self.config
        method = self.make_method()
        recipe = dict(self.method_options).get("recipe")
        what = f"{recipe} ({get_recipe(recipe).notes})" if recipe else f"{method.key} (the cramming code's optimiser)"
        lines = [
            f"reproduce {self.name}: {self.title}",
            f"  experiment: {self.experiment}",
            f"  method: {self.method}; recipe: {what}",
            f"  samples per data source: {self.samples} (random-word sources: {self.random_samples})",
            f"  lengths: {', '.join(map(str, cfg.lengths))}",
            f"  seeds: {', '.join(map(str, cfg.seeds))}",
        ]
        if isinstance(cfg, LayoutsConfig):
            lines.append(f"  layouts: {', '.join(cfg.layouts)}")
        else:
            lines.append(f"  layout: {cfg.layout}")
        if isinstance(cfg, SharingConfig):
            lines.append(f"  groups: {', '.join(map(str, cfg.groups))}; shared vector: {', '.join(cfg.shared)}")
            lines.append("  accuracy: max over seeds (per text, then mean over texts) and average over seeds")
        if isinstance(cfg, CapacityConfig):
            lines.append(f"  threshold: {cfg.threshold}; shared: {cfg.share}; capacity: max over samples")
        dtype = paper_dtype(model, device_type)
        lines.append(f"  precision: {dtype or 'auto'} ({precision_note(model, device_type)})")
        lines.append(
            f"  data (default; --data replaces it): {', '.join(self.data)} (hidden_capacity's PG-19 validation "
            "chunks, each cut to its second half of sentences as its train.py does"
            + ("; random-glove-drawn: its --shuffled texts, a length drawn in 2..L" if len(self.data) > 1 else "")
            + ")"
        )
        lines += [f"  assumed: {n}" for n in self.notes]
        return lines


def paper_dtype(model: str, device_type: str) -> str | None:
    """The papers' precision for a model: fp32 for Pythia (hidden_capacity's default, plain fp32, no autocast),
    bf16 for Llama on GPU; float32 for Llama on CPU (bf16 matmuls on CPU are slow and not the papers' setting);
    None (prototok's default, auto) for a model the papers did not use."""
    name = model.lower()
    if "pythia" in name:
        return "float32"
    if "llama" in name:
        return "bfloat16" if device_type == "cuda" else "float32"
    return None


def precision_note(model: str, device_type: str) -> str:
    dtype = paper_dtype(model, device_type)
    if dtype is None:
        return "a model the papers did not use: prototok's default, labelled as ours"
    if "llama" in model.lower() and device_type != "cuda":
        return "the papers' bf16 is for GPU; on CPU plain float32"
    return "the papers' precision for this model family"


_COMMON: tuple[str, ...] = ()
_T3_COUNTS = (
    "50 natural texts (hidden_capacity's --num_samples default), 100 random-word texts (its --shuffled scripts), "
    "one seed per text"
)

PRESETS: dict[str, Preset] = {
    "table1": Preset(
        "table1",
        "Table 1, layouts of e and m: mean +- std token accuracy",
        "layouts",
        LayoutsConfig(LAYOUT_LENGTHS, tuple(LAYOUTS), (0,)),
        50,
        _COMMON + ("one seed per text; lengths 1, 2, 4, ..., 1024 (powers of 2)",),
    ),
    "table2": Preset(
        "table2",
        "Table 2, one vector shared by a group of texts: accuracy max and average over 10 seeds",
        "sharing",
        SharingConfig((256,), GROUPS, ("m", "e"), tuple(range(10)), DEFAULT_LAYOUT),
        256,
        _COMMON
        + (
            "a group shares its vector within one seed; each seed refits the group from its own init (seeds are "
            "restarts: no vector is shared across seeds)",
        ),
    ),
    "table3": Preset(
        "table3",
        "Table 3, capacity (longest length at >= 0.99 token accuracy; C_tokens) and H_LM in nats",
        "capacity",
        CapacityConfig(LENGTHS, (0,), DEFAULT_LAYOUT, "none"),
        50,
        _COMMON + (_T3_COUNTS,),
    ),
    "table3-shared": Preset(
        "table3-shared",
        "Table 3, its shared half: one m shared by all texts of a length, one e per text",
        "capacity",
        CapacityConfig(LENGTHS, (0,), DEFAULT_LAYOUT, "m"),
        50,
        _COMMON + (_T3_COUNTS,),
    ),
    "cram-table1": Preset(
        "cram-table1",
        "Table 1 of arXiv 2502.13063, the cramming baseline: capacity, token and information gain, one [mem]",
        "capacity",
        CapacityConfig(CR_LENGTHS, (0,), DEFAULT_LAYOUT, "none"),
        50,
        ("one seed per text, as its train.py (num_runs = 1)",),
        method=Cramming.name,
        method_options=(("num_mem", 1),),
        data=(*PAPER_DATA, "random-glove-drawn"),
    ),
}
