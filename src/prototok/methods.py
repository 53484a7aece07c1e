"""Methods: how a text becomes vectors and comes back. Each is one object that says how it fits, what its file
holds and how that file is decoded; nothing outside a method branches on its name.

- "onepass" (OnePass): (e, m) under a layout, fitted by prototok.fit, decoded in one forward pass.
- "cram" (baselines.cramming.Cramming): the cramming baseline as hidden_capacity runs it: K [mem] vectors
  before BOS and the text, judged teacher-forced, rows keyed "hc-cram(...)" with layout "hc-mem".
- "cram-sink" (baselines.cramming.SinkCramming): prototok's earlier cramming variant (mem predicts t_1, judged
  on greedy generation), rows keyed "cram(...)" with layout "mem", as rows stored before it was renamed.

A new method is a dataclass with the attributes and methods of OnePass, plus one entry in METHODS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

from .baselines.cramming import Cramming, SinkCramming
from .errors import PrototokError
from .fit import FitProgress, FitResult, fit_resolved, time_step
from .layouts import Layout, get_layout
from .models import LoadedModel
from .onepass import decode_vectors, layout_scores
from .precision import load_dtype
from .protofile import ProtoTokens
from .recipes import Recipe, check_shareable, default_recipe, parse_recipe

WARM_STARTS = ("cold", "prefix")


class Method(Protocol):
    name: ClassVar[str]
    judged_on: ClassVar[str]  # the row column capacity is judged on
    shares: ClassVar[bool]  # whether texts can share a vector (fit(share="m"|"e"))
    warm: str  # "cold", or "prefix": the capacity walk starts each text from its previous length's solution
    warm_starts: ClassVar[bool]  # whether fit() takes warm_start (and so warm="prefix" is possible)
    autoregressive: ClassVar[bool]  # decoded one forward per token (a baseline), else in one forward pass
    capacity_statistic: ClassVar[str]  # "max": max over samples of per-sample capacity; "mean-accuracy": the
    # largest length whose mean (over texts) best accuracy reaches the threshold (experiments.capacity)
    longer_lengths: ClassVar[tuple[int, ...]]  # lengths its capacity grid goes on to past the default grid's end

    @classmethod
    def from_options(cls, **options) -> Method: ...  # from the CLI's options (recipe, lr, steps, ...)

    @property
    def key(self) -> str: ...  # the `recipe` column of its rows: the method's resolved settings

    def check_share(self, share: str) -> None: ...  # refuses ("none", "m", "e") sharing it cannot fit

    def load_dtype(self, requested: str | None) -> str | None: ...  # the weights' dtype its fits need (precision)

    def positions(self, layout: Layout, n: int) -> int: ...  # model positions a text of n tokens needs

    def layout_for(self, layout: Layout) -> str: ...  # the layout its rows and files carry

    @property
    def max_steps(self) -> int: ...  # per text

    def step_seconds(self, lm: LoadedModel, layout: Layout, batch: int, length: int) -> float: ...  # one timed step

    def fit(self, lm: LoadedModel, token_lists: list[list[int]], *, layout: Layout, **kw) -> list: ...

    def file_fields(self, results: list, layout: str, share: str) -> dict: ...  # e, m, layout, extra of its file

    @staticmethod
    def decode(lm: LoadedModel, proto: ProtoTokens, batch_size: int = 8) -> list[list[int]]: ...  # a file's texts

    def row_columns(self, results: list) -> dict[str, list]: ...  # per-method extra row columns


@dataclass(frozen=True)
class OnePass:
    """Proto-tokens (e, m): the papers' method."""

    recipe: Recipe
    # "prefix": in the capacity walk, each text starts from its own solution at the previous grid length (the
    # layout makes a prefix's solution a natural start: the first outputs depend on the first inputs only)
    warm: str = "cold"
    name: ClassVar[str] = "onepass"
    warm_starts: ClassVar[bool] = True
    judged_on: ClassVar[str] = "accuracy"
    shares: ClassVar[bool] = True  # texts can share e or m
    autoregressive: ClassVar[bool] = False
    capacity_statistic: ClassVar[str] = "max"  # the paper reports maximum values
    longer_lengths: ClassVar[tuple[int, ...]] = ()

    def __post_init__(self) -> None:
        if self.warm not in WARM_STARTS:
            raise ValueError(f"OnePass.warm must be one of {WARM_STARTS}, got '{self.warm}'")

    @classmethod
    def from_options(
        cls, *, recipe: str | None = None, lr=None, steps=None, init_scale=None, warm="cold", share="none", **_
    ) -> OnePass:
        """From the command line's fit options (None keeps the recipe's value; no recipe: the default for share).
        The method is checked against the sharing it runs where it runs (run_experiment: check_share)."""
        return cls(parse_recipe(recipe or default_recipe(share), lr=lr, max_steps=steps, init_scale=init_scale),
                   warm or "cold")  # fmt: skip

    @property
    def key(self) -> str:
        """The resolved recipe, plus "+prefix-warm" for warm-started rows: another measurement, another key."""
        return self.recipe.key + ("+prefix-warm" if self.warm == "prefix" else "")

    def load_dtype(self, requested: str | None) -> str | None:
        """An L-BFGS recipe loads fp32 weights when the dtype is auto (prototok.precision)."""
        return load_dtype(self.recipe, requested)

    def check_share(self, share: str) -> None:
        check_shareable(self.recipe, share)

    def positions(self, layout: Layout, n: int) -> int:
        return layout.length(n)

    def layout_for(self, layout: Layout) -> str:
        return layout.name

    @property
    def max_steps(self) -> int:
        return self.recipe.max_steps

    def step_seconds(self, lm: LoadedModel, layout: Layout, batch: int, length: int) -> float:
        def step() -> torch.Tensor:
            e = torch.randn(batch, lm.hidden_size, device=lm.device, requires_grad=True)
            m = torch.randn(batch, lm.hidden_size, device=lm.device, requires_grad=True)
            return layout_scores(lm, layout, e, m, [[0] * length] * batch)[0]

        return time_step(step)

    def fit(
        self,
        lm: LoadedModel,
        token_lists: list[list[int]],
        *,
        layout: Layout,
        seed: int,
        batch_size: int = 8,
        share: str = "none",
        progress: Callable[[FitProgress], None] | None = None,
        init_ids: list[int] | None = None,
        process_group=None,
        compile: bool = False,
        warm_start: list | None = None,
    ) -> list[FitResult]:
        """fit_resolved under this method's recipe: the caller has checked it for `share` (check_share)."""
        return fit_resolved(
            lm,
            token_lists,
            lay=layout,
            rec=self.recipe,
            seed=seed,
            share=share,
            batch_size=batch_size,
            progress=progress,
            init_ids=init_ids,
            process_group=process_group,
            compile=compile,
            warm_start=warm_start,
        )

    def file_fields(self, results: list[FitResult], layout: str, share: str) -> dict:
        e = torch.stack([r.e for r in results])  # (T, d); a shared e is the same row T times
        m = torch.stack([r.m for r in results])
        return {"e": e, "m": m[:1] if share == "m" else m, "layout": layout, "extra": {"share": share}}

    @staticmethod
    def decode(lm: LoadedModel, proto: ProtoTokens, batch_size: int = 8) -> list[list[int]]:
        """All texts of the file in one batched forward pass, or, for a file of more than DECODE_POSITIONS input
        positions (texts x padded length), in consecutive groups of texts within that bound: a small file cannot
        ask for a forward of tens of GB, and right padding never reaches a real position, so the tokens are
        those of one batch. A text whose layout needs more positions than the model's context is refused before
        any forward. batch_size does not apply."""
        d, (e, m) = lm.hidden_size, (proto.e, proto.m)
        if e.ndim != 2 or m.ndim != 2 or e.shape[1] != d or m.shape[1] != d:
            raise PrototokError(
                f"layout '{proto.layout}' needs e (T, {d}) and m (1 or T, {d}) for this model; "
                f"the file holds e {tuple(e.shape)}, m {tuple(m.shape)}"
            )
        lay = get_layout(proto.layout)  # the file's layout, by name
        need = [lay.length(n) for n in proto.lengths]
        if max(need) > lm.max_positions:
            n = proto.lengths[need.index(max(need))]
            raise PrototokError(
                f"layout '{lay.name}' needs {max(need)} positions for a text of {n} tokens, more than the model's "
                f"context ({lm.max_positions})"
            )
        out: list[list[int]] = []
        for rows in _within(need, DECODE_POSITIONS):
            mm = m if m.shape[0] == 1 else m[rows.start : rows.stop]
            out += decode_vectors(lm, e[rows.start : rows.stop], mm, lay, proto.lengths[rows.start : rows.stop])
        return out

    def row_columns(self, results: list[FitResult]) -> dict[str, list]:
        return {"evals": [r.steps_run for r in results]}


# The most input positions (texts x padded length) one decode forward runs: 16 texts at 1024 tokens, 2 at 8192.
DECODE_POSITIONS = 16384


def _within(positions: list[int], budget: int) -> list[range]:
    """Consecutive runs of texts whose padded batch (count x longest) stays within budget (a text alone may
    need more: the context bounds that)."""
    runs, start, longest = [], 0, 0
    for i, n in enumerate(positions):
        if i > start and (i + 1 - start) * max(longest, n) > budget:
            runs.append(range(start, i))
            start, longest = i, 0
        longest = max(longest, n)
    return runs + [range(start, len(positions))]


METHODS: dict[str, type] = {"onepass": OnePass, "cram": Cramming, "cram-sink": SinkCramming}


def for_layout(layout: str) -> type:
    """The method whose files (and rows) carry this layout: a method with a layout of its own, else one-pass."""
    for cls in METHODS.values():
        if getattr(cls, "file_layout", None) == layout:
            return cls
    return OnePass


def judged_score(row: dict) -> float:
    """The accuracy a stored row is judged on (its method's `judged_on` column)."""
    value = row.get(for_layout(row["layout"]).judged_on)
    return row["accuracy"] if value is None else value


def to_proto(
    method: Method,
    lm: LoadedModel,
    results: list,
    *,
    layout: str,
    share: str = "none",
    seed: int = 0,
    texts: list[str] | None = None,
    text_sha256: list[str] | None = None,
    store_text: bool = False,
    extra: dict | None = None,
) -> ProtoTokens:
    """A file of fitted results, tied to the model: the method says what its tensors are; every result adds
    its accuracy, steps, loss and fit time. Texts are identified by `texts` (their sha256) or `text_sha256`."""
    file = method.file_fields(results, layout, share)
    file["extra"] |= {"loss": [r.loss for r in results], "seconds": [r.seconds for r in results]} | (extra or {})
    return ProtoTokens.for_model(
        lm,
        texts or [],
        store_text=store_text,
        text_sha256=text_sha256,
        **file,
        lengths=[len(r.tokens) for r in results],
        accuracy=[r.accuracy for r in results],
        steps=[r.steps for r in results],
        recipe=method.key,
        seed=seed,
        precision=getattr(results[0], "precision", "") if results else "",
    )
