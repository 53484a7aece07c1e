"""proto-tokens -> one forward pass -> argmax -> text."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .layouts import batch_indices, get_layout
from .models import LoadedModel, load_model
from .onepass import predict
from .protofile import ProtoTokens
from .tokens import detokenize, tokenize


@dataclass
class Decoded:
    text: str
    tokens: list[int]
    accuracy: float | None = None  # against the reference, when one is given


def decode_tokens(lm: LoadedModel, proto: ProtoTokens) -> list[list[int]]:
    """All texts of the file in one batched forward pass."""
    if proto.layout == "mem":  # cramming baseline: greedy generation from K [mem] vectors
        from .cram import decode_mem

        return decode_mem(lm, proto)
    lay = get_layout(proto.layout)
    dummy = [[0] * n for n in proto.lengths]  # only the shape of the targets matters here
    slots, targets = batch_indices(lay, dummy)
    e, m = proto.e.to(lm.device), proto.m.to(lm.device)
    flat = predict(lm, e, m, slots.to(lm.device), targets.to(lm.device)).cpu().tolist()
    out, start = [], 0
    for n in proto.lengths:
        out.append(flat[start : start + n])
        start += n
    return out


def decode(
    proto: ProtoTokens,
    model: str | LoadedModel | None = None,
    *,
    references: list[str] | None = None,
    device: str | None = None,
) -> list[Decoded]:
    """Decode every text in the file; the model defaults to the one the file was made for."""
    lm = model if isinstance(model, LoadedModel) else load_model(model or proto.model, device)
    proto.check_model(lm)
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
