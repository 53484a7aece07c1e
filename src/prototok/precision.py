"""The precision a fit runs at, decided once per fit: L-BFGS in fp32, low precision only where measured safe.

Why: L-BFGS compares small loss differences (its Armijo test) and builds curvature pairs from small gradient
differences; bf16 rounding (8 bits of mantissa) swamps both. On held-out 32-token texts the default L-BFGS recipe
reached exact on 4/4 in fp32, 0/4 with bf16 weights and 1/4 with fp32 weights under bf16 autocast, while AdamW
(`fast-e50`) under bf16 autocast solved 4/4 and its solutions decode exactly in fp32 (docs/precision.md).

The rule, on every device:
- a recipe that runs L-BFGS fits without autocast and without TF32 matmuls: fp32 weights compute in fp32. A
  model loaded with `dtype="auto"` is loaded in float32 for such a recipe (`load_dtype`). Weights a user asked
  for in bf16/fp16 stay as asked, with one warning naming what they lose (`fit_precision`).
- an AdamW-only recipe keeps the model's own precision (fp32 weights under bf16 autocast on CUDA, bf16/fp16
  weights as they are), which was measured safe.
The precision a fit ran at is stored in the proto-token file (`Precision.name`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from .models import LoadedModel
from .recipes import Recipe

log = logging.getLogger("prototok")

PRECISIONS = ("auto", "model")  # fit(precision=...): the rule, or as the model computes
_SHORT = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


@dataclass(frozen=True)
class Precision:
    """Weights' dtype, and the autocast dtype the backbone runs under (None: the weights' own dtype)."""

    weights: torch.dtype
    autocast: torch.dtype | None = None

    @property
    def name(self) -> str:
        """ "float32", "bfloat16", "float16", or "float32+bfloat16-autocast": what files and `info` show."""
        base = _SHORT[self.weights]
        return f"{base}+{_SHORT[self.autocast]}-autocast" if self.autocast is not None else base

    @property
    def exact(self) -> bool:
        """Plain fp32 arithmetic end to end (what L-BFGS needs)."""
        return self.weights == torch.float32 and self.autocast is None


def of_model(lm: LoadedModel) -> Precision:
    """The precision lm computes in as loaded."""
    return Precision(lm.dtype, lm.autocast_dtype)


def uses_lbfgs(recipe: Recipe) -> bool:
    return recipe.optimizer == "lbfgs"


def load_dtype(recipe: Recipe, requested: str | torch.dtype | None) -> str | torch.dtype | None:
    """The dtype to load a model with for this recipe: "auto" (None) becomes float32 for an L-BFGS recipe, on
    every device (on CUDA auto would be the checkpoint's own dtype, bf16 for most Hub models); anything the user
    asked for explicitly stays."""
    if uses_lbfgs(recipe) and (requested is None or str(requested).lower() == "auto"):
        return "float32"
    return requested


def fit_precision(lm: LoadedModel, recipe: Recipe) -> tuple[LoadedModel, Precision]:
    """The model view a fit runs on, and its precision. An L-BFGS recipe drops autocast (fp32 weights compute
    in fp32); on bf16/fp16 weights it warns once and runs as asked."""
    if not uses_lbfgs(recipe):
        return lm, of_model(lm)
    if lm.dtype != torch.float32:
        log.warning(
            "recipe '%s' runs L-BFGS with %s weights: its line search needs float32 (held-out 32-token texts: "
            "exact 0/4 in bfloat16 vs 4/4 in float32); load the model in float32 (--dtype float32) or use an "
            "AdamW recipe (fast-e50) for low precision",
            recipe.name,
            _SHORT[lm.dtype],
        )
        return lm, of_model(lm)
    if lm.autocast_dtype is not None:
        lm = replace(lm, autocast_dtype=None)  # same weights, same fingerprint: plain fp32 compute
    return lm, of_model(lm)


def decode_dtype(precision: str, requested: str | torch.dtype | None) -> str | torch.dtype | None:
    """The dtype to load a model with to decode a file fitted at `precision`: with "auto", the fit's own
    weights' dtype (a solution decodes exactly only in its own precision); anything asked for stays."""
    if precision and (requested is None or str(requested).lower() == "auto"):
        return precision.partition("+")[0]
    return requested


def for_decode(lm: LoadedModel, precision: str) -> LoadedModel:
    """The model view that decodes a file fitted at `precision`: the autocast the fit ran under (the weights
    are checked by the fingerprint, which includes their dtype). A file that does not say ("", written before
    the precision was stored) decodes as the model computes."""
    if not precision or precision.partition("+")[0] != _SHORT[lm.dtype]:
        return lm
    rest = precision.partition("+")[2]
    want = {"bfloat16-autocast": torch.bfloat16, "float16-autocast": torch.float16}.get(rest)
    if lm.autocast_dtype != want:
        log.info("decoding in the precision these proto-tokens were fitted in: %s", precision)
        lm = replace(lm, autocast_dtype=want)
    return lm


@contextlib.contextmanager
def exact_matmuls(precision: Precision) -> Iterator[None]:
    """float32 matmuls at "highest" precision (no TF32 on CUDA) while an exact-fp32 fit runs; the process's
    setting is restored after. A no-op for other precisions."""
    if not precision.exact:
        yield
        return
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved)
