"""A learned encoder: text -> (e, m) in one pass, no per-text optimisation (amortised proto-tokens).

The encoder reads the frozen LM's own token embeddings (never trained, never saved with the encoder), runs a
few transformer layers with a learned query token in front, and projects the query's output to the LM's
hidden size as e. m is one trained vector shared by every text, or (predict_m) read from a second query.
Checkpoints are a folder: encoder.safetensors (weights) beside encoder.json (config, LM fingerprints).

Shapes: B texts, L tokens (padded), D the LM's hidden size, W the encoder's width.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import PrototokError
from ..layouts import DEFAULT_LAYOUT, get_layout
from ..models import LoadedModel
from ..onepass import layout_scores
from ..protofile import ProtoTokens
from ..recipes import DEFAULT_RECIPE, Recipe, get_recipe
from ..tokens import tokenize

WEIGHTS, CONFIG = "encoder.safetensors", "encoder.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class EncoderConfig:
    """The encoder's architecture and the LM it belongs to; one help line per field."""

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
        get_layout(self.layout)  # raises ValueError naming the legal layouts

    @classmethod
    def for_model(cls, lm: LoadedModel, **kw) -> EncoderConfig:
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
        self.inp = nn.Linear(cfg.lm_hidden, w)
        self.pos = nn.Parameter(torch.randn(cfg.max_len, w) * 0.02)
        self.query = nn.Parameter(torch.randn(queries, w) * 0.02)  # learned "CLS" rows, read out after the layers
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
            self.m = nn.Parameter(torch.randn(1, cfg.lm_hidden) * cfg.m_init_scale)

    def forward(self, tok_emb: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tok_emb (B, L, D) float; pad (B, L) bool, True where padded."""
        b, n, _ = tok_emb.shape
        if n > self.cfg.max_len:
            raise PrototokError(f"text of {n} tokens is longer than this encoder's max_len ({self.cfg.max_len})")
        q = self.query.unsqueeze(0).expand(b, -1, -1)  # (B, Q, W)
        x = torch.cat([q, self.inp(tok_emb) + self.pos[:n]], dim=1)  # (B, Q+L, W)
        mask = torch.cat([torch.zeros(b, q.shape[1], dtype=torch.bool, device=pad.device), pad], dim=1)
        h = self.body(x, src_key_padding_mask=mask)  # (B, Q+L, W)
        out = self.head(h[:, 0])  # (B, Q*D)
        if self.cfg.predict_m:
            return out[:, : self.cfg.lm_hidden], out[:, self.cfg.lm_hidden :]  # (B, D), (B, D)
        return out, self.m  # (B, D), (1, D)


def token_batch(lm: LoadedModel, token_lists: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen LM's embeddings of right-padded token lists: (B, L, D) without grad, and the pad mask (B, L)."""
    n = max(len(t) for t in token_lists)
    ids = torch.zeros(len(token_lists), n, dtype=torch.long)
    pad = torch.ones(len(token_lists), n, dtype=torch.bool)
    for i, t in enumerate(token_lists):
        ids[i, : len(t)] = torch.tensor(t)
        pad[i, : len(t)] = False
    with torch.no_grad():
        emb = lm.model.get_input_embeddings().weight[ids.to(lm.device)].float()  # raw table rows, unscaled
    return emb, pad.to(lm.device)


def one_pass_loss(
    lm: LoadedModel, e: torch.Tensor, m: torch.Tensor, token_lists: list[list[int]], layout: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fitter's objective for given (e, m): per-text cross-entropy (B,) with grad, correct tokens (B,)."""
    return layout_scores(lm, get_layout(layout), e, m, token_lists)


# ---------------------------------------------------------------------------------------------- checkpoints


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    """Write to a temp file in the same folder, then rename: a kill never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_encoder(encoder: ProtoEncoder, folder: str | Path, extra: dict | None = None) -> Path:
    """Weights as safetensors, config (+ extra, e.g. the training step) as sorted-key JSON."""
    from .. import __version__

    folder = Path(folder)
    state = {k: v.detach().float().cpu().contiguous() for k, v in encoder.state_dict().items()}
    meta = {"config": asdict(encoder.cfg), "format_version": FORMAT_VERSION, "prototok_version": __version__}
    meta |= extra or {}
    _atomic(folder / WEIGHTS, lambda tmp: save_file(state, tmp))
    _atomic(folder / CONFIG, lambda tmp: Path(tmp).write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n"))
    return folder


def read_meta(folder: str | Path) -> dict:
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    try:
        meta = json.loads((folder / CONFIG).read_text())
    except FileNotFoundError:
        raise PrototokError(f"{folder} is not an encoder checkpoint (no {CONFIG})") from None
    except json.JSONDecodeError as err:
        raise PrototokError(f"{folder / CONFIG} is corrupt ({err})") from None
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise PrototokError(
            f"{folder} has encoder format {meta['format_version']}; this prototok reads {FORMAT_VERSION}"
        )
    return meta


def config_from_meta(meta: dict, where: str) -> EncoderConfig:
    raw = meta.get("config", {})
    known = {f.name for f in fields(EncoderConfig)}
    if unknown := sorted(set(raw) - known):
        import warnings

        warnings.warn(f"{where}: ignoring unknown encoder config keys {unknown}", stacklevel=3)
    try:
        return EncoderConfig(**{k: v for k, v in raw.items() if k in known})
    except TypeError as err:
        raise PrototokError(f"{where} has an incomplete encoder config ({err})") from None


def check_encoder_model(cfg: EncoderConfig, lm: LoadedModel, where: str) -> None:
    """An encoder writes vectors for one LM only: refuse any other model or tokenizer, naming both."""
    if cfg.lm_fingerprint != lm.fingerprint:
        raise PrototokError(
            f"encoder {where} was trained for model '{cfg.lm_name}' ({cfg.lm_fingerprint[:12]}), "
            f"not for '{lm.name}' ({lm.fingerprint[:12]})"
        )
    if cfg.tokenizer_fingerprint != lm.tokenizer_fingerprint:
        raise PrototokError(
            f"encoder {where} was trained with the tokenizer of '{cfg.lm_name}' "
            f"({cfg.tokenizer_fingerprint[:12]}), not that of '{lm.name}' ({lm.tokenizer_fingerprint[:12]})"
        )


def load_encoder(folder: str | Path, lm: LoadedModel) -> ProtoEncoder:
    """An encoder checkpoint folder (or its encoder.safetensors), checked against lm, on lm's device, in eval."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    meta = read_meta(folder)
    cfg = config_from_meta(meta, str(folder))
    check_encoder_model(cfg, lm, str(folder))
    try:
        state = load_file(folder / WEIGHTS)
    except (FileNotFoundError, SafetensorError, OSError) as err:
        raise PrototokError(f"cannot read {folder / WEIGHTS}: {err}") from None
    enc = ProtoEncoder(cfg)
    try:
        enc.load_state_dict(state)
    except RuntimeError as err:
        raise PrototokError(f"{folder / WEIGHTS} does not match its {CONFIG}: {err}") from None
    return enc.to(lm.device).eval()


# ---------------------------------------------------------------------------------------------- inference


@torch.no_grad()
def predict_pairs(
    lm: LoadedModel, encoder: ProtoEncoder, token_lists: list[list[int]], batch_size: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """One encoder pass per batch: e (T, D) and m (T, D) on CPU, one row per text."""
    es, ms = [], []
    for i in range(0, len(token_lists), batch_size):
        chunk = token_lists[i : i + batch_size]
        e, m = encoder(*token_batch(lm, chunk))
        es.append(e.float().cpu())
        ms.append(m.float().cpu().expand(len(chunk), -1))
    return torch.cat(es), torch.cat(ms)


def _tokenize_for(lm: LoadedModel, cfg: EncoderConfig, texts: list[str]) -> list[list[int]]:
    token_lists = [tokenize(lm.tokenizer, t) for t in texts]
    if too_long := [i for i, t in enumerate(token_lists) if len(t) > cfg.max_len]:
        raise PrototokError(
            f"text {too_long[0]} has {len(token_lists[too_long[0]])} tokens; this encoder reads at most "
            f"{cfg.max_len} (and {len(too_long)} text(s) in all are too long)"
        )
    return token_lists


@torch.no_grad()
def _score(lm, e, m, token_lists, layout, batch_size) -> tuple[list[float], list[float]]:
    """Token accuracy and loss of given vectors (one forward per batch)."""
    acc, loss = [], []
    for i in range(0, len(token_lists), batch_size):
        toks = token_lists[i : i + batch_size]
        mm = m if m.shape[0] == 1 else m[i : i + batch_size]
        lo, ok = one_pass_loss(lm, e[i : i + batch_size].to(lm.device), mm.to(lm.device), toks, layout)
        acc += [c / len(t) for c, t in zip(ok.cpu().tolist(), toks)]
        loss += lo.cpu().tolist()
    return acc, loss


def amortised_encode(
    lm: LoadedModel,
    ckpt: str | Path,
    texts: list[str],
    *,
    refine_steps: int = 0,
    recipe: Recipe | str = "paper",
    layout: str = DEFAULT_LAYOUT,
    seed: int = 0,
    batch_size: int = 8,
    progress=None,
) -> ProtoTokens:
    """Proto-tokens from one encoder pass per text; refine_steps > 0 then fits from there (a warm start).

    progress: the fitter's callback (prototok.fit.Progress), called once per encoder batch too.
    """
    from ..fit import Progress, fit

    if refine_steps < 0:
        raise ValueError(f"refine_steps must be >= 0, got {refine_steps}")
    if isinstance(texts, str):
        texts = [texts]
    enc = load_encoder(ckpt, lm)
    cfg = enc.cfg
    lay = get_layout(layout)
    if lay.name != get_layout(cfg.layout).name:
        raise PrototokError(f"encoder {ckpt} was trained for layout '{cfg.layout}', not '{lay.name}'")
    rec = get_recipe(recipe) if isinstance(recipe, str) else recipe
    token_lists = _tokenize_for(lm, cfg, list(texts))
    e, m = predict_pairs(lm, enc, token_lists, batch_size)
    acc0, loss0 = _score(lm, e, m, token_lists, lay.name, batch_size)
    if progress:
        mean = sum(acc0) / len(acc0)
        progress(Progress(0, len(texts) if not refine_steps else 0, len(texts), mean, sum(a >= 1.0 for a in acc0)))
    meta = read_meta(ckpt)
    extra = {
        "encoder": str(ckpt),
        "encoder_step": meta.get("step"),
        "refine_steps": refine_steps,
        "amortised_accuracy": acc0,
        "amortised_loss": loss0,
    }
    if refine_steps:
        rec = replace(rec, max_steps=refine_steps)
        res = fit(
            lm,
            token_lists,
            layout=lay,
            recipe=rec,
            seed=seed,
            batch_size=batch_size,
            progress=progress,
            warm_start=list(zip(e, m)),
        )
        e, m = torch.stack([r.e for r in res]), torch.stack([r.m for r in res])
        acc, steps = [r.accuracy for r in res], [r.steps for r in res]
        extra |= {"loss": [r.loss for r in res], "seconds": [r.seconds for r in res]}
    else:
        acc, steps = acc0, [0] * len(texts)
        extra |= {"loss": loss0, "seconds": [0.0] * len(texts)}
        if not cfg.predict_m:
            m = m[:1]  # one shared m: store it once
    return ProtoTokens.for_model(
        lm,
        texts,
        e=e,
        m=m,
        layout=lay.name,
        lengths=[len(t) for t in token_lists],
        accuracy=acc,
        steps=steps,
        recipe=f"encoder+{rec.name}" if refine_steps else "encoder",
        seed=seed,
        extra=extra | {"share": "none"},
    )


# ---------------------------------------------------------------------------------------------- evaluation


def _median(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2


def _distances(a_e, a_m, b_e, b_m) -> dict:
    cos = torch.nn.functional.cosine_similarity
    return {
        "cos_e": cos(a_e, b_e, dim=1).mean().item(),
        "cos_m": cos(a_m, b_m, dim=1).mean().item(),
        "l2_e": (a_e - b_e).norm(dim=1).mean().item(),
        "l2_m": (a_m - b_m).norm(dim=1).mean().item(),
    }


def evaluate_encoder(
    lm: LoadedModel,
    ckpt: str | Path,
    texts: list[str],
    *,
    recipe: Recipe | str = DEFAULT_RECIPE,
    max_steps: int | None = None,
    fits: bool = True,
    seed: int = 0,
    batch_size: int = 8,
    progress: Callable[[str, object], None] | None = None,
) -> dict:
    """How good the amortised proto-tokens are, on held-out texts.

    - amortised token accuracy and loss, overall and by text length;
    - with fits: steps to 100% from the encoder's output (warm) and from the recipe's random init (cold),
      the same recipe and budget for both, and the warm/cold ratio (unsolved texts count as the budget);
    - cosine / L2 of the amortised (e, m) to the cold-optimised and to the warm-refined solutions.
    progress(phase, fit_progress) is called during the fits ("warm" or "cold").
    """
    from ..fit import fit

    enc = load_encoder(ckpt, lm)
    cfg = enc.cfg
    rec = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if max_steps is not None:
        rec = replace(rec, max_steps=max_steps)
    token_lists = _tokenize_for(lm, cfg, list(texts))
    e, m = predict_pairs(lm, enc, token_lists, batch_size)
    acc, loss = _score(lm, e, m, token_lists, cfg.layout, batch_size)
    lengths = [len(t) for t in token_lists]
    by_len: dict[int, dict] = {}
    for n, a, lo in zip(lengths, acc, loss):
        row = by_len.setdefault(n, {"texts": 0, "accuracy": 0.0, "loss": 0.0, "exact": 0})
        row["texts"] += 1
        row["accuracy"] += a
        row["loss"] += lo
        row["exact"] += a >= 1.0
    for row in by_len.values():
        row["accuracy"] /= row["texts"]
        row["loss"] /= row["texts"]
    out = {
        "encoder": str(ckpt),
        "encoder_step": read_meta(ckpt).get("step"),
        "texts": len(texts),
        "amortised": {
            "accuracy": sum(acc) / len(acc),
            "loss": sum(loss) / len(loss),
            "exact": sum(a >= 1.0 for a in acc),
            "by_length": {str(n): by_len[n] for n in sorted(by_len)},
        },
        "per_text": [{"tokens": n, "amortised_accuracy": a} for n, a in zip(lengths, acc)],
    }
    if not fits:
        return out
    runs = {}
    for phase, warm in (("warm", list(zip(e, m))), ("cold", None)):
        cb = (lambda p, phase=phase: progress(phase, p)) if progress else None
        runs[phase] = fit(
            lm,
            token_lists,
            layout=cfg.layout,
            recipe=rec,
            seed=seed,
            batch_size=batch_size,
            progress=cb,
            warm_start=warm,
        )
    budget = rec.max_steps
    summary = {"recipe": rec.name, "lr": rec.lr, "max_steps": budget}
    for phase, res in runs.items():
        steps = [r.steps if r.solved else budget for r in res]
        solved = [r.steps for r in res if r.solved]
        summary[phase] = {
            "solved": len(solved),
            "mean_steps": sum(steps) / len(steps),  # unsolved texts count as the whole budget
            "median_steps": _median(steps),
            "mean_steps_solved": sum(solved) / len(solved) if solved else None,
            "accuracy": sum(r.accuracy for r in res) / len(res),
        }
    for row, w, c in zip(out["per_text"], runs["warm"], runs["cold"]):
        row |= {"warm_steps": w.steps, "warm_solved": w.solved, "cold_steps": c.steps, "cold_solved": c.solved}
    cold_mean = summary["cold"]["mean_steps"]
    summary["warm_over_cold_steps"] = summary["warm"]["mean_steps"] / cold_mean if cold_mean else None
    both = [(w.steps, c.steps) for w, c in zip(runs["warm"], runs["cold"]) if w.solved and c.solved]
    summary["warm_over_cold_steps_both_solved"] = (
        sum(w for w, _ in both) / sum(c for _, c in both) if both and sum(c for _, c in both) else None
    )
    out["fits"] = summary

    def stack(res):
        return torch.stack([r.e for r in res]), torch.stack([r.m for r in res])

    ce, cm = stack(runs["cold"])
    we, wm = stack(runs["warm"])
    out["distance"] = {
        "amortised_to_cold": _distances(e, m, ce, cm),
        "amortised_to_warm": _distances(e, m, we, wm),
        "norms": {
            "amortised_e": e.norm(dim=1).mean().item(),
            "amortised_m": m.norm(dim=1).mean().item(),
            "cold_e": ce.norm(dim=1).mean().item(),
            "cold_m": cm.norm(dim=1).mean().item(),
        },
    }
    return out
