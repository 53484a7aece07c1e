"""Greedy generation after a prompt of vectors: what a model writes when it reads vectors (cramming's [mem],
a probe's [e, m]) as an ordinary prompt. Shared by the cramming baseline (its decoder and its gen_accuracy)
and the geometry experiment's probes, so both read vectors back the same way."""

from __future__ import annotations

import inspect

import torch

from .models import LoadedModel
from .onepass import embed_scale


@torch.no_grad()
def greedy_generate(
    lm: LoadedModel, mem: torch.Tensor, max_new_tokens: int, lead: torch.Tensor | None = None
) -> torch.Tensor:
    """Greedy decoding from [mem] (B, K, d), then the lead tokens (B, l) if given (BOS, or a given t_1), with a
    KV cache: (B, max_new_tokens) token ids.

    Every row's prompt is exactly K + l vectors, so a batch needs no padding or attention mask. Our own loop
    rather than model.generate: no generation_config (sampling flags, EOS stop, repetition penalty) can change it.
    """
    dtype = lm.autocast_dtype or torch.float32
    x = mem.to(lm.device) * embed_scale(lm)
    if lead is not None and lead.shape[1]:
        x = torch.cat([x, lm.model.get_input_embeddings()(lead.to(lm.device)).to(x.dtype)], dim=1)
    with torch.autocast(lm.device.type, dtype=dtype, enabled=lm.autocast_dtype is not None):
        out = lm.model(inputs_embeds=x, use_cache=True, logits_to_keep=1)
        tok = out.logits[:, -1].argmax(-1)  # (B,)
        toks = [tok]
        for _ in range(max_new_tokens - 1):
            cache = {_cache_keyword(lm.model): _cache_of(out)}  # the model built the right cache type (sliding...)
            out = lm.model(input_ids=tok[:, None], use_cache=True, **cache)
            tok = out.logits[:, -1].argmax(-1)  # (B,)
            toks.append(tok)
    return torch.stack(toks, dim=1).cpu()  # (B, max_new_tokens)


def _cache_keyword(model: torch.nn.Module) -> str:
    """transformers 5.x renamed `past_key_values` to `cache`; accept either."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(out) -> object:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def generate_tokens(
    lm: LoadedModel,
    mems: torch.Tensor,
    lengths: list[int],
    batch_size: int = 8,
    leads: list[list[int]] | None = None,
) -> list[list[int]]:
    """Greedy generation for every text: mems (T, K, d) -> T token lists of the given lengths, each generated
    after its lead tokens (all leads of one length: [BOS], [t_1] or none)."""
    out: list[list[int]] = []
    leads = leads or [[] for _ in lengths]
    for i in range(0, mems.shape[0], batch_size):
        chunk = lengths[i : i + batch_size]
        lead = torch.tensor(leads[i : i + batch_size], dtype=torch.long).view(len(chunk), -1)
        gen = greedy_generate(lm, mems[i : i + batch_size], max(chunk), lead)
        out += [row[:n] for row, n in zip(gen.tolist(), chunk)]
    return out
