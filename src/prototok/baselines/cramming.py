"""The autoregressive baseline: "cramming" a text into K [mem] vectors (Kuratov et al., arXiv 2502.13063).

The frozen model reads [mem_1 .. mem_K, t_0 .. t_{N-2}] and is trained teacher-forced: the output at the last
mem position predicts t_0, the output at t_{i-1} predicts t_i. Decoding is greedy generation from [mem] alone,
one token per forward with a KV cache, so a text costs N forwards where proto-tokens cost one.

Kept from the paper's code (yurakuratov/hidden_capacity, train.py): AdamW lr 1e-2, betas (0.9, 0.9), weight
decay 0.01, init randn * std(input embedding table), 5000 steps, stop at accuracy 1.0 or after 2000 steps
without a better accuracy. Changed: no BOS (mem takes its place and predicts t_0, as proto-tokens do); the kept
vectors are the ones that scored best, not the ones after the following optimiser step; texts are batched
(right padding, padded targets ignored) with a step count per text, so a text's trajectory does not depend on
its batch; and greedy accuracy is reported beside teacher-forced accuracy, which can hide a greedy collapse.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import ClassVar

import torch

from ..errors import PrototokError
from ..fit import Progress, Slots, run_slots, time_step
from ..layouts import IGNORE
from ..models import LoadedModel
from ..onepass import embed_scale, scores
from ..protofile import ProtoTokens
from ..recipes import Recipe

MEM_LAYOUT = "mem"  # the proto-token file layout of cramming results: e holds (T, K, d), m is empty (1, 0)


@dataclass(frozen=True)
class CramConfig:
    """The cramming recipe; one help line per field (defaults: the paper's)."""

    num_mem: int = 1  # K, the number of [mem] vectors per text
    lr: float = 1e-2  # AdamW learning rate
    betas: tuple[float, float] = (0.9, 0.9)  # AdamW betas
    weight_decay: float = 0.01  # decoupled, as torch.optim.AdamW
    eps: float = 1e-8
    init_scale: float = 1.0  # init N(0, (init_scale * std of the input embedding table)^2)
    # mem_1's init std and learning rate are this many times the others' (Recipe.e_scale's twin): position 0
    # is the attention sink, where a unit-scale vector barely moves its own output; with K = 1 that output
    # is the prediction of t_0 (SmolLM2-135M kept it wrong, which derails greedy decoding). 1 = the paper's.
    first_scale: float = 1.0
    max_steps: int = 5000  # per text; a text stops early at teacher-forced accuracy 1.0
    patience: int = 2000  # stop a text after this many steps without a better accuracy; 0 = never

    def __post_init__(self) -> None:
        if self.num_mem < 1:
            raise ValueError(f"CramConfig.num_mem must be >= 1, got {self.num_mem}")
        if self.lr <= 0:
            raise ValueError(f"CramConfig.lr must be > 0, got {self.lr}")
        if self.max_steps < 0 or self.patience < 0:
            raise ValueError(f"CramConfig.max_steps and patience must be >= 0, got {self.max_steps}, {self.patience}")
        if self.init_scale <= 0:
            raise ValueError(f"CramConfig.init_scale must be > 0, got {self.init_scale}")
        if self.first_scale <= 0:
            raise ValueError(f"CramConfig.first_scale must be > 0, got {self.first_scale}")

    def recipe(self) -> Recipe:
        """The same update as prototok's fitter (RowAdamW), so both methods differ only in what they train."""
        return Recipe(
            name="cram",
            lr=self.lr,
            betas=self.betas,
            weight_decay=self.weight_decay,
            eps=self.eps,
            init="embedding",
            init_scale=self.init_scale,
            max_steps=self.max_steps,
        )


@dataclass
class CramResult:
    index: int  # position in the input list
    tokens: list[int]
    mem: torch.Tensor  # (K, d) on CPU, in the embedding table's space (scaled like proto-tokens)
    accuracy: float  # teacher-forced token accuracy of the kept solution
    gen_accuracy: float  # greedy generation: fraction of positions where the generated token is the text's
    gen_prefix: int  # greedy generation: tokens right before the first error
    generated: list[int]  # greedy generation, N tokens
    steps: int  # optimiser steps taken before the kept solution
    loss: float  # teacher-forced cross-entropy (nats/token) of the kept solution
    seconds: float  # wall time the text spent in the fitter
    solved: bool  # teacher-forced accuracy 1.0


def teacher_forced_inputs(
    lm: LoadedModel, mem: torch.Tensor, token_lists: list[list[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """mem (B, K, d) -> inputs (B, K + N_max - 1, d) and targets (B, K + N_max - 1), right-padded.

    The last token is never an input (nothing after it is supervised). Padded inputs are token 0 and never
    read by a real position under the causal mask; their targets are IGNORE.
    """
    b, k, _ = mem.shape
    n_max = max(len(t) for t in token_lists)
    ids = torch.zeros(b, n_max - 1, dtype=torch.long)
    targets = torch.full((b, k + n_max - 1), IGNORE, dtype=torch.long)
    for i, toks in enumerate(token_lists):
        ids[i, : len(toks) - 1] = torch.tensor(toks[:-1], dtype=torch.long)
        targets[i, k - 1 : k - 1 + len(toks)] = torch.tensor(toks, dtype=torch.long)
    text = lm.model.get_input_embeddings()(ids.to(lm.device))  # (B, N_max - 1, d), already scaled (Gemma)
    x = torch.cat([mem * embed_scale(lm), text.to(mem.dtype)], dim=1)  # (B, K + N_max - 1, d)
    return x, targets.to(lm.device)


def teacher_forced_scores(
    lm: LoadedModel, mem: torch.Tensor, token_lists: list[list[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-text mean cross-entropy (B,) with grad and correct-token counts (B,), teacher-forced."""
    x, targets = teacher_forced_inputs(lm, mem, token_lists)
    return scores(lm, x, targets)


@torch.no_grad()
def greedy_generate(lm: LoadedModel, mem: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Greedy decoding from [mem] (B, K, d) with a KV cache: (B, max_new_tokens) token ids.

    Every row's prompt is exactly K vectors, so a batch needs no padding or attention mask. Our own loop rather
    than model.generate: no generation_config (sampling flags, EOS stop, repetition penalty) can change it.
    """
    dtype = lm.autocast_dtype or torch.float32
    with torch.autocast(lm.device.type, dtype=dtype, enabled=lm.autocast_dtype is not None):
        out = lm.model(inputs_embeds=mem.to(lm.device) * embed_scale(lm), use_cache=True, logits_to_keep=1)
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


def generation_scores(generated: list[int], tokens: list[int]) -> tuple[float, int]:
    """(fraction of positions right, tokens right before the first error)."""
    right = [a == b for a, b in zip(generated, tokens)]
    prefix = right.index(False) if False in right else len(right)
    return sum(right) / len(tokens), prefix


def cram(
    lm: LoadedModel,
    token_lists: list[list[int]],
    config: CramConfig | None = None,
    *,
    seed: int = 0,
    batch_size: int = 8,
    progress: Callable[[Progress], None] | None = None,
    init_ids: list[int] | None = None,
) -> list[CramResult]:
    """Train K [mem] vectors per text; results in input order, each with teacher-forced and greedy accuracy.

    The continuous batcher of prototok.fit (run_slots): a text leaves its slot when solved, out of steps or out
    of patience, and the next takes it. Each text draws its init from its own stream (seed, init_ids[i]; by
    default its index), so an experiment can make a text's vectors depend on its key, not on its batch.
    """
    cfg = config or CramConfig()
    if not token_lists or any(len(t) == 0 for t in token_lists):
        raise PrototokError("nothing to cram: every text needs at least one token")
    longest = cfg.num_mem + max(len(t) for t in token_lists) - 1
    if longest > lm.max_positions:
        raise PrototokError(f"mem + text need {longest} positions, more than the model's context ({lm.max_positions})")
    d, k, dev = lm.hidden_size, cfg.num_mem, lm.device
    scale = cfg.init_scale * lm.model.get_input_embeddings().weight.float().std().item()
    size = max(1, min(batch_size, len(token_lists)))
    # RowAdamW updates rows of 2-D tensors: mem_1 (slots, d) with its own lr scale, mem_2..K (slots, (K-1)*d)
    params = [torch.zeros(size, d, device=dev, requires_grad=True)]
    params += [torch.zeros(size, (k - 1) * d, device=dev, requires_grad=True)] if k > 1 else []

    def mem_rows(rows: torch.Tensor) -> torch.Tensor:
        return torch.cat([p[rows] for p in params], dim=1).view(len(rows), k, d)  # (R, K, d)

    def init(s: int, i: int, gen: torch.Generator, restart: bool) -> None:
        v = (torch.randn(k * d, generator=gen) * scale).to(dev)  # CPU stream: same on any device
        params[0][s] = v[:d] * cfg.first_scale
        if k > 1:
            params[1][s] = v[d:]

    def score(rows: torch.Tensor, toks: list[list[int]]):
        return teacher_forced_scores(lm, mem_rows(rows), toks)

    def keep(s: int) -> tuple:
        return (mem_rows(torch.tensor([s], device=dev))[0].detach().cpu(),)

    kept = run_slots(
        Slots(params, [cfg.first_scale, 1.0][: len(params)], init, score, keep),
        token_lists,
        cfg.recipe(),
        seed=seed,
        init_ids=init_ids,
        patience=cfg.patience,  # steps without a better accuracy, as the paper's code counts them
        progress=progress,
    )
    mems = torch.stack([kp.state[0] for kp in kept])  # (T, K, d)
    generated = generate_tokens(lm, mems, [len(t) for t in token_lists], batch_size)
    results = []
    for i, kp in enumerate(kept):
        gen_acc, prefix = generation_scores(generated[i], token_lists[i])
        results.append(
            CramResult(
                i,
                token_lists[i],
                kp.state[0],
                kp.accuracy,
                gen_acc,
                prefix,
                generated[i],
                kp.steps,
                kp.loss,
                kp.seconds,
                kp.accuracy >= 1,
            )  # fmt: skip
        )
    return results


def generate_tokens(lm: LoadedModel, mems: torch.Tensor, lengths: list[int], batch_size: int = 8) -> list[list[int]]:
    """Greedy generation for every text: mems (T, K, d) -> T token lists of the given lengths."""
    out: list[list[int]] = []
    for i in range(0, mems.shape[0], batch_size):
        chunk = lengths[i : i + batch_size]
        gen = greedy_generate(lm, mems[i : i + batch_size], max(chunk))
        out += [row[:n] for row, n in zip(gen.tolist(), chunk)]
    return out


@dataclass(frozen=True)
class Cramming:
    """The cramming baseline as a prototok method (see methods.py): files of layout "mem", decoded greedily."""

    config: CramConfig = CramConfig()
    name: ClassVar[str] = "cram"
    judged_on: ClassVar[str] = "gen_accuracy"  # greedy generation: what reading the text back gives
    file_layout: ClassVar[str] = MEM_LAYOUT
    shares: ClassVar[bool] = False

    @classmethod
    def from_options(cls, *, lr=None, steps=None, init_scale=None, num_mem=1, first_scale=1.0, **_) -> Cramming:
        """From the command line's options: --lr, --steps, --init-scale override the paper's values; --recipe
        and --layout do not apply."""
        overrides = {k: v for k, v in (("lr", lr), ("max_steps", steps), ("init_scale", init_scale)) if v is not None}
        return cls(CramConfig(num_mem=num_mem, first_scale=first_scale, **overrides))

    @property
    def key(self) -> str:
        """'cram(num_mem=K)' plus the fields that differ from the paper's defaults, e.g. 'cram(num_mem=1,lr=0.1)'."""
        base, cfg = CramConfig(), self.config
        diff = [
            f"{f.name}={getattr(cfg, f.name)}" for f in fields(cfg) if getattr(cfg, f.name) != getattr(base, f.name)
        ]
        return f"cram({','.join([f'num_mem={cfg.num_mem}'] + [x for x in diff if not x.startswith('num_mem=')])})"

    def positions(self, layout: str, n: int) -> int:
        return self.config.num_mem + n - 1

    def layout_for(self, layout: str) -> str:
        return MEM_LAYOUT

    @property
    def max_steps(self) -> int:
        return self.config.max_steps

    def step_seconds(self, lm: LoadedModel, layout: str, batch: int, length: int) -> float:
        def step() -> torch.Tensor:
            mem = torch.randn(batch, self.config.num_mem, lm.hidden_size, device=lm.device, requires_grad=True)
            return teacher_forced_scores(lm, mem, [[0] * length] * batch)[0]

        return time_step(step)

    def fit(
        self,
        lm: LoadedModel,
        token_lists: list[list[int]],
        *,
        layout: str = MEM_LAYOUT,
        seed: int = 0,
        batch_size: int = 8,
        share: str = "none",
        progress: Callable[[Progress], None] | None = None,
        init_ids: list[int] | None = None,
        process_group=None,
    ) -> list[CramResult]:
        if share != "none":
            raise PrototokError("cramming has no shared vectors: use --share none with --method cram")
        return cram(lm, token_lists, self.config, seed=seed, batch_size=batch_size, progress=progress,
                    init_ids=init_ids)  # fmt: skip

    def file_fields(self, results: list[CramResult], layout: str, share: str) -> dict:
        cfg = self.config
        return {
            "e": torch.stack([r.mem for r in results]),  # (T, K, d)
            "m": torch.zeros(1, 0),
            "layout": MEM_LAYOUT,
            "extra": {
                "num_mem": cfg.num_mem,
                "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
                "gen_accuracy": [r.gen_accuracy for r in results],
            },
        }

    @staticmethod
    def decode(lm: LoadedModel, proto: ProtoTokens, batch_size: int = 8) -> list[list[int]]:
        """Greedy generation of every text in the file."""
        return generate_tokens(lm, mem_of(proto).to(lm.device), proto.lengths, batch_size)

    def row_columns(self, results: list[CramResult]) -> dict[str, list]:
        return {"gen_accuracy": [r.gen_accuracy for r in results]}


def mem_of(proto: ProtoTokens) -> torch.Tensor:
    """The (T, K, d) mem vectors of a cramming file, after checking it is one."""
    if proto.layout != MEM_LAYOUT:
        raise PrototokError(f"layout '{proto.layout}' is one-pass proto-tokens, not cramming [mem] vectors")
    e, k = proto.e, proto.extra.get("num_mem")
    if e.ndim != 3 or e.shape[0] != len(proto) or e.shape[1] != k or proto.m.numel() != 0:
        raise PrototokError(
            f"a '{MEM_LAYOUT}' file needs e of shape (T, K, d) with K = num_mem = {k} and an empty m; "
            f"got e {tuple(e.shape)}, m {tuple(proto.m.shape)}"
        )
    return e
