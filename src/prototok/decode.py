"""proto-tokens -> one forward pass -> argmax -> text."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .methods import for_layout
from .models import LoadedModel, as_loaded
from .precision import decode_dtype, for_decode
from .protofile import ProtoTokens
from .tokens import detokenize, tokenize


@dataclass
class Decoded:
    text: str
    tokens: list[int]
    accuracy: float | None = None  # against the reference, when one is given


def decode_tokens(lm: LoadedModel, proto: ProtoTokens) -> list[list[int]]:
    """Token ids of every text in the file, as its method decodes them (one-pass: one batched forward, or groups
    of texts within methods.DECODE_POSITIONS for a large file)."""
    proto.check_model(lm)
    logging.getLogger("prototok").debug("decode: %d text(s), layout %s, recipe %s, model fingerprint %s", len(proto),
                                        proto.layout, proto.recipe, proto.model_fingerprint[:12])  # fmt: skip
    return for_layout(proto.layout).decode(for_decode(lm, proto.precision), proto)  # in the fit's precision


def decode(
    proto: ProtoTokens,
    model: str | LoadedModel | tuple | None = None,
    *,
    references: list[str] | None = None,
    device: str | None = None,
) -> list[Decoded]:
    """Decode every text in the file; the model defaults to the one the file was made for (loaded here, once;
    decode_tokens checks the file against it)."""
    lm = as_loaded(model, device, default=proto.model, dtype=decode_dtype(proto.precision, None))
    with torch.no_grad():
        token_lists = decode_tokens(lm, proto)
    out = []
    for i, toks in enumerate(token_lists):
        acc = None
        if references is not None:
            ref = tokenize(lm.tokenizer, references[i])
            acc = sum(a == b for a, b in zip(toks, ref)) / max(len(ref), len(toks))
        out.append(Decoded(detokenize(lm.tokenizer, toks), toks, acc))
    return out
