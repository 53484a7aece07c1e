"""Probing (arXiv 2505.21189): what the frozen model writes when it reads a text's proto-tokens as an ordinary
prompt and generates autoregressively, instead of the one-pass layout: greedy generation after [e, m], and
after [BOS, e, m] (the BOS embedding in front, whether or not the tokenizer adds one by default). Scored
against the text the proto-tokens reconstruct in one pass: token accuracy, and how many leading tokens match.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import PrototokError
from ..generation import generate_tokens
from ..models import LoadedModel

PROBE_PROMPTS = ("e m", "BOS e m")


@dataclass(frozen=True)
class Probe:
    prompt: str  # one of PROBE_PROMPTS
    tokens: list[int]  # generated
    accuracy: float  # position-wise against the text
    prefix: int  # leading tokens equal to the text's
    text: str  # the generation, decoded

    def record(self) -> dict:
        return {"prompt": self.prompt, "accuracy": self.accuracy, "prefix": self.prefix, "text": self.text}


def bos_id(lm: LoadedModel) -> int:
    """The tokenizer's BOS token id (named even when not added by default, as SmolLM2's and Pythia's)."""
    tok = lm.tokenizer.bos_token_id
    if tok is None:
        raise PrototokError(f"{lm.name}: the tokenizer names no BOS token, so there is no [BOS, e, m] probe")
    return tok


@torch.no_grad()
def probe(lm: LoadedModel, e: torch.Tensor, m: torch.Tensor, texts: list[list[int]], prompt: str) -> list[Probe]:
    """Greedy generation, as long as each text, after the prompt built from each row of e, m (T, d)."""
    if prompt not in PROBE_PROMPTS:
        raise PrototokError(f"unknown probe prompt '{prompt}': use one of {', '.join(PROBE_PROMPTS)}")
    emb = lm.model.get_input_embeddings()
    dtype = emb.weight.dtype
    prompts = torch.stack([e, m.expand_as(e)], dim=1).to(lm.device, dtype)  # (T, 2, d)
    if prompt == "BOS e m":
        bos = emb.weight[bos_id(lm)][None].to(lm.device, dtype)  # (1, d): the table's row, unscaled like e and m
        prompts = torch.cat([bos.expand(len(texts), 1, -1), prompts], dim=1)  # (T, 3, d)
    gen = generate_tokens(lm, prompts, [len(t) for t in texts])
    out = []
    for g, t in zip(gen, texts):
        same = [a == b for a, b in zip(g, t)]
        prefix = same.index(False) if False in same else len(same)
        text = lm.tokenizer.decode(g, skip_special_tokens=False)
        out.append(Probe(prompt, g, sum(same) / len(t), prefix, text))
    return out
