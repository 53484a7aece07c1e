"""The encoder network: text -> (e, m) in one pass, no per-text optimisation (amortised proto-tokens).

The encoder reads the text through the frozen LM (never trained, never saved with the encoder): its token
embeddings (reader "embeddings"), or the hidden states of one of its layers (reader "lm": the LM's own reading
of the text, computed without grad and cacheable per text, as in-context autoencoders read a context). It runs
a few transformer layers with a learned query token in front and projects the query's output to the LM's
hidden size as e, times e_scale (the fitter found e must be ~50x m on SmolLM2, whose position 0 is an attention
sink). m is one trained vector shared by every text, or (predict_m) read from a second query. Its training
objective is the fitter's: the one-pass loss of prototok.onepass, through the frozen LM.

Shapes: B texts, L tokens (padded), D the LM's hidden size, W the encoder's width, Q query rows (1 or 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from ..errors import PrototokError
from ..layouts import DEFAULT_LAYOUT, Layout, get_layout
from ..models import LoadedModel
from ..onepass import layout_scores

READERS = ("embeddings", "lm")


@dataclass(frozen=True)
class EncoderConfig:
    """The encoder's architecture and the LM it belongs to; one help line per field. Saved in encoder.json."""

    lm_hidden: int  # D: the frozen LM's hidden size (the size of e and m)
    max_len: int = 16  # longest text in tokens (learned positions stop there)
    width: int = 256  # W: the encoder's own width
    layers: int = 2  # transformer encoder layers
    heads: int = 4  # attention heads (must divide width)
    ff_mult: int = 4  # feed-forward width = ff_mult * width
    dropout: float = 0.0
    predict_m: bool = False  # False: one trained m shared by all texts; True: m read from a second query
    m_init_scale: float = 1.0  # shared m starts as N(0, m_init_scale^2), the paper's init for (e, m)
    layout: str = DEFAULT_LAYOUT  # the layout the encoder was trained for
    reader: str = "embeddings"  # "embeddings": the LM's token embeddings; "lm": hidden states of reader_layer
    reader_layer: int = -1  # with reader "lm": which of the LM's hidden states (0 = embeddings, -1 = the last)
    e_scale: float = 1.0  # e = e_scale * the head's output (fast-e50 puts e at 50x m)
    lm_name: str = ""
    lm_fingerprint: str = ""
    tokenizer_fingerprint: str = ""

    def __post_init__(self) -> None:
        for name in ("lm_hidden", "max_len", "width", "layers", "heads", "ff_mult"):
            if getattr(self, name) < 1:
                raise ValueError(f"EncoderConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"EncoderConfig.heads ({self.heads}) must divide width ({self.width})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"EncoderConfig.dropout must lie in [0, 1), got {self.dropout}")
        if self.reader not in READERS:
            raise ValueError(f"EncoderConfig.reader must be one of {READERS}, got '{self.reader}'")
        if not (math.isfinite(self.e_scale) and self.e_scale > 0):
            raise ValueError(f"EncoderConfig.e_scale must be a finite number > 0, got {self.e_scale}")
        _ = self.lay  # resolved now, once: an unknown name is a ValueError naming the legal layouts

    @cached_property
    def lay(self) -> Layout:
        """The layout itself (`layout` is its name, as stored), resolved once."""
        return get_layout(self.layout)

    @classmethod
    def for_model(cls, lm: LoadedModel, **kw) -> EncoderConfig:
        """A config tied to lm: its hidden size, and the fingerprints a checkpoint is checked against."""
        return cls(
            lm_hidden=lm.hidden_size,
            lm_name=lm.name,
            lm_fingerprint=lm.fingerprint,
            tokenizer_fingerprint=lm.tokenizer_fingerprint,
            **kw,
        )


class ProtoEncoder(nn.Module):
    """Token embeddings (B, L, D) of the frozen LM -> e (B, D), m (B, D) or (1, D)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        w, queries = cfg.width, 2 if cfg.predict_m else 1
        # hidden states differ in scale by orders of magnitude across positions (the sink at 0): normalise each
        self.norm_in = nn.LayerNorm(cfg.lm_hidden) if cfg.reader == "lm" else nn.Identity()
        self.inp = nn.Linear(cfg.lm_hidden, w)
        self.pos = nn.Parameter(torch.randn(cfg.max_len, w) * 0.02)  # (max_len, W)
        self.query = nn.Parameter(torch.randn(queries, w) * 0.02)  # (Q, W) learned "CLS" rows, read out last
        layer = nn.TransformerEncoderLayer(
            w, cfg.heads, cfg.ff_mult * w, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        # nested tensors would take a different (fast-path) kernel in eval than in training: keep one path
        self.body = nn.TransformerEncoder(layer, cfg.layers, norm=nn.LayerNorm(w), enable_nested_tensor=False)
        self.head = nn.Linear(w, cfg.lm_hidden * queries)
        # an untrained encoder already emits vectors at the scale of the paper's N(0, 1) init
        nn.init.normal_(self.head.weight, std=1.0 / math.sqrt(w))
        nn.init.zeros_(self.head.bias)
        if not cfg.predict_m:
            self.m = nn.Parameter(torch.randn(1, cfg.lm_hidden) * cfg.m_init_scale)  # (1, D)

    def forward(self, tok_emb: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tok_emb (B, L, D) float; pad (B, L) bool, True where padded."""
        b, n, _ = tok_emb.shape
        if n > self.cfg.max_len:
            raise PrototokError(f"text of {n} tokens is longer than this encoder's max_len ({self.cfg.max_len})")
        q = self.query.unsqueeze(0).expand(b, -1, -1)  # (B, Q, W)
        x = torch.cat([q, self.inp(self.norm_in(tok_emb)) + self.pos[:n]], dim=1)  # (B, Q+L, W)
        queries_seen = torch.zeros(b, q.shape[1], dtype=torch.bool, device=pad.device)  # (B, Q)
        mask = torch.cat([queries_seen, pad], dim=1)  # (B, Q+L)
        h = self.body(x, src_key_padding_mask=mask)  # (B, Q+L, W)
        out = self.head(h[:, 0])  # (B, Q*D)
        e = out[:, : self.cfg.lm_hidden] * self.cfg.e_scale  # (B, D)
        if self.cfg.predict_m:
            return e, out[:, self.cfg.lm_hidden :]  # (B, D), (B, D)
        return e, self.m  # (B, D), (1, D)


def token_batch(
    lm: LoadedModel, token_lists: list[list[int]], reader: str = "embeddings", layer: int = -1
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the encoder reads, for right-padded token lists: (B, L, D) without grad, and the pad mask (B, L).

    reader "embeddings": raw table rows, unscaled (the encoder learns its own input scale, whatever the LM
    multiplies by). reader "lm": the LM's hidden states after `layer`, one no-grad forward over the batch (causal:
    a text's rows do not depend on the padding after it); about a third of a training step's forward+backward."""
    n = max(len(t) for t in token_lists)
    ids = torch.zeros(len(token_lists), n, dtype=torch.long)  # (B, L)
    pad = torch.ones(len(token_lists), n, dtype=torch.bool)  # (B, L)
    for i, t in enumerate(token_lists):
        ids[i, : len(t)] = torch.tensor(t)
        pad[i, : len(t)] = False
    ids, pad = ids.to(lm.device), pad.to(lm.device)
    with torch.no_grad():
        if reader == "embeddings":
            return lm.model.get_input_embeddings().weight[ids].float(), pad  # (B, L, D)
        out = lm.model.base_model(input_ids=ids, output_hidden_states=True, use_cache=False)
        return out.hidden_states[layer].float(), pad  # (B, L, D)


def one_pass_loss(
    lm: LoadedModel, e: torch.Tensor, m: torch.Tensor, token_lists: list[list[int]], lay: Layout
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fitter's objective for given (e, m) under layout `lay`, so the encoder learns exactly what fitting
    optimises: e (B, D), m (B or 1, D) -> per-text cross-entropy (B,) with grad, correct tokens (B,)."""
    return layout_scores(lm, lay, e, m, token_lists)
