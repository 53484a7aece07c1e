"""The science in one place: [e, m, ..., m] -> frozen LM -> logits at the target positions.

Shapes: B texts, L input positions, d hidden size, V vocabulary, T supervised positions in the batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .errors import PrototokError
from .layouts import IGNORE, Layout, batch_indices
from .models import LoadedModel

# Logit rows per chunk: bounds the (rows, V) fp32 block so memory stays flat at large B and N.
CHUNK_ELEMENTS = 1 << 24


def embed_scale(lm: LoadedModel) -> float:
    """Some embedding modules scale their output (Gemma multiplies by sqrt(d)); proto-tokens live in the
    table's space and get the same scale, so init and nearest-token comparisons mean the same everywhere."""
    scale = getattr(lm.model.get_input_embeddings(), "embed_scale", 1.0)
    return float(scale)


def embed_inputs(lm: LoadedModel, e: torch.Tensor, m: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """e, m: (B, d) per text or (1, d) shared; slots: (B, L) with 0 = e, 1 = m."""
    b, d = slots.shape[0], e.shape[-1]
    pair = torch.stack([e.expand(b, d), m.expand(b, d)], dim=1)  # (B, 2, d)
    x = torch.gather(pair, 1, slots.unsqueeze(-1).expand(-1, -1, d))  # (B, L, d)
    return x * embed_scale(lm)


def compiled_backbone(lm: LoadedModel) -> Callable[..., object]:
    """torch.compile'd backbone for fixed-shape steps: CUDA graphs on GPU ("reduce-overhead"), inductor on CPU.

    Falls back to eager, with one warning, where compilation is unavailable or fails at its first call.
    """
    eager = lm.model.base_model
    try:
        fn = torch.compile(eager, mode="reduce-overhead" if lm.device.type == "cuda" else None, dynamic=False)
    except Exception as err:  # noqa: BLE001 - any failure means: run eager
        warnings.warn(f"torch.compile unavailable ({type(err).__name__}: {err}); running eager", stacklevel=2)
        return eager
    state = {"fn": fn}

    def call(**kwargs):
        try:
            return state["fn"](**kwargs)
        except Exception as err:  # noqa: BLE001
            if state["fn"] is eager:
                raise
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); running eager", stacklevel=2)
            state["fn"] = eager
            return eager(**kwargs)

    return call


def hidden_states(lm: LoadedModel, inputs: torch.Tensor, backbone: Callable[..., object] | None = None) -> torch.Tensor:
    """Backbone only: the LM head runs later, on supervised rows alone. Plain causal mask, no cache."""
    if lm.autocast_dtype is None:
        inputs = inputs.to(lm.dtype)  # a bf16/fp16 model takes its own dtype (fp32 e, m keep their grads)
    with torch.autocast(
        lm.device.type, dtype=lm.autocast_dtype or torch.float32, enabled=lm.autocast_dtype is not None
    ):
        out = (backbone or lm.model.base_model)(inputs_embeds=inputs, use_cache=False)
    return out.last_hidden_state  # (B, L, d)


def head(lm: LoadedModel, h: torch.Tensor) -> torch.Tensor:
    """The LM head in fp32: (rows, d) -> (rows, V)."""
    proj = lm.model.get_output_embeddings()
    logits = proj(h.to(proj.weight.dtype) if lm.autocast_dtype is None else h).float()  # (rows, V)
    cfg = getattr(lm.model.config, "text_config", lm.model.config)
    if cap := getattr(cfg, "final_logit_softcapping", None):  # Gemma-2 style; argmax is unchanged by it
        logits = torch.tanh(logits / cap) * cap
    return logits


def _chunk(lm: LoadedModel, h: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = head(lm, h)  # (rows, V)
    return F.cross_entropy(logits, tgt, reduction="none"), logits.argmax(-1)


def row_scores(lm: LoadedModel, h: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy (T,) and argmax token (T,) of hidden rows h (T, d) against targets (T,).

    The one place the LM head runs. Rows go in chunks of at most CHUNK_ELEMENTS logits, under activation
    checkpointing, so no (T, V) fp32 block is held for large T: a chunk's logits are recomputed in backward.
    """
    step = max(1, CHUNK_ELEMENTS // lm.model.get_output_embeddings().weight.shape[0])
    if h.shape[0] <= step:
        return _chunk(lm, h, targets)
    grad = torch.is_grad_enabled()
    parts = [
        checkpoint(_chunk, lm, h[i : i + step], targets[i : i + step], use_reentrant=False)
        if grad
        else _chunk(lm, h[i : i + step], targets[i : i + step])
        for i in range(0, h.shape[0], step)
    ]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def focal_weighted(tok_loss: torch.Tensor, gamma: float) -> torch.Tensor:
    """Focal loss (1 - p)^gamma * CE per token, p = exp(-CE): success is argmax at every position, so tokens
    already right stop pulling on e and m and the few still wrong (at long N often output 0, which e alone
    decides) get the gradient. gamma 0 is plain cross-entropy."""
    if gamma == 0:
        return tok_loss
    return (-torch.expm1(-tok_loss)).clamp(min=0).pow(gamma) * tok_loss


def token_scores(
    lm: LoadedModel, h: torch.Tensor, targets: torch.Tensor, focal: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-text mean cross-entropy (B,) with grad (focal-weighted when focal > 0), and per-text correct-token
    counts (B,) without.

    h: (B, L, d), targets: (B, L) with IGNORE where unsupervised; only supervised rows reach the LM head.
    """
    rows = targets != IGNORE  # (B, L)
    tg = targets[rows]  # (T,)
    tok_loss, argmax = row_scores(lm, h[rows], tg)  # (T,), (T,)
    tok_loss = focal_weighted(tok_loss, focal)
    text_of = rows.nonzero()[:, 0]  # (T,) which text each row belongs to
    b = targets.shape[0]
    counts = rows.sum(1).clamp(min=1)  # (B,)
    loss = torch.zeros(b, device=h.device).index_add(0, text_of, tok_loss) / counts
    correct = torch.zeros(b, dtype=torch.long, device=h.device).index_add(0, text_of, (argmax == tg).long())
    return loss, correct


def scores(
    lm: LoadedModel,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    backbone: Callable[..., object] | None = None,
    focal: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward pass and its loss, for every caller: input vectors (B, L, d) and targets (B, L) ->
    per-text mean cross-entropy (B,) with grad and correct-token counts (B,).

    One-pass fitting, the cramming baseline (teacher-forced inputs), Bezier paths and the encoder all go
    through here, so chunking, autocast and the head's soft-capping are decided once.
    """
    return token_scores(lm, hidden_states(lm, inputs, backbone), targets, focal)


def layout_scores(
    lm: LoadedModel,
    lay: Layout,
    e: torch.Tensor,
    m: torch.Tensor,
    token_lists: list[list[int]],
    length: int | None = None,
    backbone: Callable[..., object] | None = None,
    focal: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """scores() of texts under a layout: e, m (B, d) or (1, d) -> loss (B,), correct (B,).
    length pads every text to that many tokens (one fixed shape for a compiled backbone)."""
    slots, targets = batch_indices(lay, token_lists, length)
    return scores(lm, embed_inputs(lm, e, m, slots.to(lm.device)), targets.to(lm.device), backbone, focal)


def check_finite(loss: torch.Tensor) -> None:
    """A NaN/inf loss is the user's settings (learning rate, init scale), reported as one line."""
    if not torch.isfinite(loss).all():
        raise PrototokError("loss became NaN/inf: lower the learning rate or init scale")


@torch.no_grad()
def predict(
    lm: LoadedModel, e: torch.Tensor, m: torch.Tensor, slots: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Argmax token at every supervised position of one forward pass: (T,) in row-major order."""
    h = hidden_states(lm, embed_inputs(lm, e, m, slots))
    rows = targets != IGNORE
    return row_scores(lm, h[rows], targets[rows])[1]


@torch.no_grad()
def decode_vectors(
    lm: LoadedModel, e: torch.Tensor, m: torch.Tensor, lay: Layout, lengths: list[int]
) -> list[list[int]]:
    """Texts of the given lengths from their (e, m) under layout `lay` in one batched forward pass."""
    dummy = [[0] * n for n in lengths]  # only the shape of the targets matters here
    slots, targets = batch_indices(lay, dummy)
    flat = predict(lm, e.to(lm.device), m.to(lm.device), slots.to(lm.device), targets.to(lm.device))
    out, start = [], 0
    for n in lengths:
        out.append(flat[start : start + n].tolist())
        start += n
    return out
