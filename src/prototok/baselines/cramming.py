"""The autoregressive baseline: "cramming" a text into K [mem] vectors (Kuratov et al., arXiv 2502.13063).

Two methods, each under its own name, key and file layout, so their rows never mix:

- `Cramming` (method "cram", recipe key "hc-cram(...)", layout "hc-mem"): the baseline as its code
  (yurakuratov/hidden_capacity, model.py and train.py) runs it. The model reads [mem_1..mem_K, BOS, t_1..t_N]
  when the tokenizer adds a BOS by default (hidden_capacity tokenizes with the tokenizer's defaults), else
  [mem_1..mem_K, t_1..t_N]; the logits at the mem positions are dropped, and the text positions are supervised
  with the one-token shift: t_1..t_N predicted from BOS..t_{N-1} with a BOS, t_2..t_N from t_1..t_{N-1} without
  one (t_1 is then given: it is stored in the file and fed when decoding). Capacity is judged on that
  teacher-forced accuracy (the fraction of supervised positions whose argmax is right, train.py's
  calculate_accuracy); greedy generation's accuracy over the same positions is kept as `gen_accuracy`.
  A text takes max_steps forward passes at most, as train.py's `for _ in range(num_iterations)`.
- `SinkCramming` (method "cram-sink", recipe key "cram(...)", layout "mem"): prototok's earlier variant, kept
  so rows stored before keep their meaning. No BOS: the output at the last mem position (the attention sink
  with K = 1) predicts t_1; decoded by greedy generation from [mem] alone and judged on it.

Both keep train.py's optimiser and stop rule: AdamW lr 1e-2, betas (0.9, 0.9), weight decay 0.01, init randn *
std(input embedding table), 5000 steps, stop at accuracy 1.0 or after 2000 steps without a better accuracy.
Deliberate differences (docs/fidelity.md): the kept vectors are the ones that scored best, not the ones after
the following optimiser step (train.py reads `memory` after `opt.step()`; the best accuracy it reports is the
same); texts are batched (right padding, padded targets ignored) with a step count per text, so a text's
trajectory does not depend on its batch; each text's init is drawn from its own stream (seed, sample), not
from the global torch RNG; prototok's length counts text tokens, hidden_capacity's max_length counts the BOS too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import ClassVar

import torch

from ..errors import PrototokError
from ..fit import FitProgress, Slots, run_slots, time_step
from ..generation import generate_tokens
from ..layouts import IGNORE, Layout
from ..models import LoadedModel
from ..onepass import embed_scale, scores
from ..protofile import ProtoTokens
from ..recipes import Recipe
from ..tokens import added_bos

MEM_LAYOUT = "mem"  # file layout of SinkCramming results: e holds (T, K, d), m is empty (1, 0)
HC_LAYOUT = "hc-mem"  # file layout of Cramming (hidden_capacity's) results: the same tensors, plus BOS / t_1
HC_LENGTHS = (1568, 2048)  # hidden_capacity's grid goes on past 1448 (train.py's default ends at 1568;
# its scripts/run_llama-3.1-8b.sh lists 1280 1568 2048 2560 3072): prototok's grid for the baseline adds these


class Targets(list):
    """The tokens a text's loss supervises (so run_slots' accuracy is right over supervised positions only),
    with `lead`, the tokens fed before them and not supervised: [BOS], or [t_1] when there is no BOS; [] for
    the sink variant, whose last mem position predicts the first target."""

    def __init__(self, targets: list[int], lead: list[int]):
        super().__init__(targets)
        self.lead = list(lead)


def hc_targets(tokens: list[int], bos: int | None) -> Targets:
    """hidden_capacity's supervision of a text: all N tokens after a BOS, else t_2..t_N after a given t_1."""
    if bos is not None:
        return Targets(tokens, [bos])
    if len(tokens) < 2:
        raise PrototokError("without a BOS token the first token is given: a text needs at least 2 tokens")
    return Targets(tokens[1:], tokens[:1])


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
    accuracy: float  # teacher-forced token accuracy of the kept solution, over the supervised positions
    gen_accuracy: float  # greedy generation: fraction of the supervised positions generated right
    gen_prefix: int  # greedy generation: tokens right before the first error (a given t_1 counts as right)
    generated: list[int]  # the text read back by greedy generation, N tokens (a given t_1 first)
    steps: int  # optimiser steps taken before the kept solution
    loss: float  # teacher-forced cross-entropy (nats/token) of the kept solution
    seconds: float  # wall time the text spent in the fitter
    solved: bool  # teacher-forced accuracy 1.0


def teacher_forced_inputs(
    lm: LoadedModel, mem: torch.Tensor, token_lists: list[list[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """mem (B, K, d) -> inputs (B, K + L_max - 1, d) and targets (B, K + L_max - 1), right-padded.

    A text is its lead (Targets.lead: [BOS], [t_1] or nothing; a plain list has none) and its targets T; the
    model reads [mem, lead + T without its last token], and position K + len(lead) - 1 + j predicts T[j]: the
    last lead token predicts T[0], or with no lead the last mem position does (the sink variant). The logits
    at the other mem positions are never supervised. Padded inputs are token 0 and never read by a real
    position under the causal mask; their targets are IGNORE.
    """
    b, k, _ = mem.shape
    leads = [getattr(t, "lead", []) for t in token_lists]
    fulls = [lead + list(t) for lead, t in zip(leads, token_lists)]
    n_max = max(len(f) for f in fulls)
    ids = torch.zeros(b, n_max - 1, dtype=torch.long)
    targets = torch.full((b, k + n_max - 1), IGNORE, dtype=torch.long)
    for i, (lead, full) in enumerate(zip(leads, fulls)):
        ids[i, : len(full) - 1] = torch.tensor(full[:-1], dtype=torch.long)
        start = k + len(lead) - 1
        targets[i, start : start + len(full) - len(lead)] = torch.tensor(full[len(lead) :], dtype=torch.long)
    text = lm.model.get_input_embeddings()(ids.to(lm.device))  # (B, L_max - 1, d), already scaled (Gemma)
    x = torch.cat([mem * embed_scale(lm), text.to(mem.dtype)], dim=1)  # (B, K + N_max - 1, d)
    return x, targets.to(lm.device)


def teacher_forced_scores(
    lm: LoadedModel, mem: torch.Tensor, token_lists: list[list[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-text mean cross-entropy (B,) with grad and correct-token counts (B,), teacher-forced."""
    x, targets = teacher_forced_inputs(lm, mem, token_lists)
    return scores(lm, x, targets)


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
    progress: Callable[[FitProgress], None] | None = None,
    init_ids: list[int] | None = None,
    hc: bool = False,
) -> list[CramResult]:
    """Train K [mem] vectors per text; results in input order, each with teacher-forced and greedy accuracy.

    hc=False: the sink variant (mem predicts t_1). hc=True: hidden_capacity's input and targets (see the module
    docstring): BOS when the tokenizer adds one, else t_1 given; at most max_steps forward passes per text.
    The continuous batcher of prototok.fit (run_slots): a text leaves its slot when solved, out of steps or out
    of patience, and the next takes it. Each text draws its init from its own stream (seed, init_ids[i]; by
    default its index), so an experiment can make a text's vectors depend on its key, not on its batch.
    """
    cfg = config or CramConfig()
    if not token_lists or any(len(t) == 0 for t in token_lists):
        raise PrototokError("nothing to cram: every text needs at least one token")
    bos = added_bos(lm) if hc else None
    targets = [hc_targets(list(t), bos) for t in token_lists] if hc else [list(t) for t in token_lists]
    longest = cfg.num_mem + max(len(t) + len(getattr(t, "lead", [])) for t in targets) - 1
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

    recipe = cfg.recipe()
    if hc:  # run_slots scores max_steps + 1 times; train.py runs num_iterations forward passes
        recipe = replace(recipe, max_steps=max(cfg.max_steps - 1, 0))
    kept = run_slots(
        Slots(params, [cfg.first_scale, 1.0][: len(params)], init, score, keep),
        targets,
        recipe,
        seed=seed,
        init_ids=init_ids,
        patience=cfg.patience,  # steps without a better accuracy, as the paper's code counts them
        progress=progress,
    )
    mems = torch.stack([kp.state[0] for kp in kept])  # (T, K, d)
    leads = [getattr(t, "lead", []) for t in targets]
    generated = generate_tokens(lm, mems, [len(t) for t in targets], batch_size, leads)
    results = []
    for i, kp in enumerate(kept):
        gen_acc, prefix = generation_scores(generated[i], list(targets[i]))  # over the supervised positions
        given = [] if bos is not None else leads[i]  # a given t_1 is part of the text read back
        results.append(
            CramResult(
                i,
                list(token_lists[i]),
                kp.state[0],
                kp.accuracy,
                gen_acc,
                prefix + len(given),
                given + generated[i],
                kp.steps,
                kp.loss,
                kp.seconds,
                kp.accuracy >= 1,
            )  # fmt: skip
        )
    return results


def _key(prefix: str, cfg: CramConfig) -> str:
    """'PREFIX(num_mem=K)' plus the fields that differ from the paper's defaults, e.g. 'cram(num_mem=1,lr=0.1)'."""
    base = CramConfig()
    diff = [f"{f.name}={getattr(cfg, f.name)}" for f in fields(cfg) if getattr(cfg, f.name) != getattr(base, f.name)]
    return f"{prefix}({','.join([f'num_mem={cfg.num_mem}'] + [x for x in diff if not x.startswith('num_mem=')])})"


@dataclass(frozen=True)
class SinkCramming:
    """prototok's earlier cramming variant as a method (see methods.py): no BOS, the last mem position predicts
    t_1; files of layout "mem", decoded greedily from [mem] alone and judged on that. Its rows keep the recipe
    key "cram(num_mem=K,...)" they always had."""

    config: CramConfig = CramConfig()
    name: ClassVar[str] = "cram-sink"
    warm: ClassVar[str] = "cold"  # its capacity walk always starts cold
    warm_starts: ClassVar[bool] = False
    judged_on: ClassVar[str] = "gen_accuracy"  # greedy generation: what reading the text back gives
    file_layout: ClassVar[str] = MEM_LAYOUT
    shares: ClassVar[bool] = False
    autoregressive: ClassVar[bool] = True  # decoded one forward per token
    capacity_statistic: ClassVar[str] = "max"  # per sample, then the max over samples (as one-pass)
    longer_lengths: ClassVar[tuple[int, ...]] = ()
    key_prefix: ClassVar[str] = "cram"
    hc: ClassVar[bool] = False

    @staticmethod
    def load_dtype(requested: str | None) -> str | None:
        """AdamW only: the model's own precision is safe (prototok.precision)."""
        return requested

    @classmethod
    def from_options(cls, *, lr=None, steps=None, init_scale=None, num_mem=1, first_scale=1.0, **_):
        """From the command line's options: --lr, --steps, --init-scale override the paper's values; --recipe
        and --layout do not apply."""
        overrides = {k: v for k, v in (("lr", lr), ("max_steps", steps), ("init_scale", init_scale)) if v is not None}
        return cls(CramConfig(num_mem=num_mem, first_scale=first_scale, **overrides))

    @property
    def key(self) -> str:
        return _key(self.key_prefix, self.config)

    def check_share(self, share: str) -> None:
        if share != "none":
            raise PrototokError(f"cramming has no shared vectors: use --share none with --method {self.name}")

    def positions(self, layout: Layout, n: int) -> int:
        return self.config.num_mem + n - (0 if self.hc else 1)  # hc: room for a BOS

    def layout_for(self, layout: Layout) -> str:
        return self.file_layout

    @property
    def max_steps(self) -> int:
        return self.config.max_steps

    def step_seconds(self, lm: LoadedModel, layout: Layout, batch: int, length: int) -> float:
        def step() -> torch.Tensor:
            mem = torch.randn(batch, self.config.num_mem, lm.hidden_size, device=lm.device, requires_grad=True)
            return teacher_forced_scores(lm, mem, [[0] * length] * batch)[0]

        return time_step(step)

    def fit(
        self,
        lm: LoadedModel,
        token_lists: list[list[int]],
        *,
        layout: Layout | None = None,  # [mem] vectors have no one-pass layout: files carry file_layout
        seed: int = 0,
        batch_size: int = 8,
        share: str = "none",
        progress: Callable[[FitProgress], None] | None = None,
        init_ids: list[int] | None = None,
        process_group=None,
    ) -> list[CramResult]:
        self.check_share(share)
        return cram(lm, token_lists, self.config, seed=seed, batch_size=batch_size, progress=progress,
                    init_ids=init_ids, hc=self.hc)  # fmt: skip

    def file_fields(self, results: list[CramResult], layout: str, share: str) -> dict:
        cfg = self.config
        extra = {
            "num_mem": cfg.num_mem,
            "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
            "gen_accuracy": [r.gen_accuracy for r in results],
        }
        return {
            "e": torch.stack([r.mem for r in results]),  # (T, K, d)
            "m": torch.zeros(1, 0),
            "layout": self.file_layout,
            "extra": extra | (self.lead_fields(results) if self.hc else {}),
        }

    @staticmethod
    def lead_fields(results: list[CramResult]) -> dict:
        return {}

    @staticmethod
    def decode(lm: LoadedModel, proto: ProtoTokens, batch_size: int = 8) -> list[list[int]]:
        """Greedy generation of every text in the file, from [mem] alone."""
        mems = mem_of(proto)
        check_context(lm, proto, mems.shape[1] - 1)  # K mems, then the text less its last token
        return generate_tokens(lm, mems.to(lm.device), proto.lengths, batch_size)

    def row_columns(self, results: list[CramResult]) -> dict[str, list]:
        return {"gen_accuracy": [r.gen_accuracy for r in results]}


@dataclass(frozen=True)
class Cramming(SinkCramming):
    """The cramming baseline as hidden_capacity runs it (module docstring), as a prototok method: files of
    layout "hc-mem" (with the BOS id, or each text's given t_1), rows keyed "hc-cram(num_mem=K,...)", capacity
    judged on teacher-forced accuracy and summarized as the largest length whose mean best accuracy over texts
    reaches the threshold; greedy generation's accuracy is stored beside it (gen_accuracy)."""

    name: ClassVar[str] = "cram"
    warm: ClassVar[str] = "cold"  # its capacity walk always starts cold
    warm_starts: ClassVar[bool] = False
    judged_on: ClassVar[str] = "accuracy"  # teacher-forced, as train.py's calculate_accuracy
    file_layout: ClassVar[str] = HC_LAYOUT
    capacity_statistic: ClassVar[str] = "mean-accuracy"  # largest length whose mean best accuracy >= threshold
    longer_lengths: ClassVar[tuple[int, ...]] = HC_LENGTHS
    key_prefix: ClassVar[str] = "hc-cram"
    hc: ClassVar[bool] = True

    @staticmethod
    def lead_fields(results: list[CramResult]) -> dict:
        """What decoding needs besides mem: generation starts from [mem, BOS], or [mem, t_1] (t_1 given)."""
        return {"first_tokens": [r.tokens[0] for r in results]}

    @staticmethod
    def decode(lm: LoadedModel, proto: ProtoTokens, batch_size: int = 8) -> list[list[int]]:
        """Greedy generation of every text after [mem, BOS], or after [mem, t_1] with t_1 given (then part of
        the text read back) when the tokenizer adds no BOS."""
        mems, bos = mem_of(proto), added_bos(lm)
        check_context(lm, proto, mems.shape[1])  # K mems, BOS (or t_1), the text less its last token
        mems = mems.to(lm.device)
        if bos is not None:
            return generate_tokens(lm, mems, proto.lengths, batch_size, [[bos]] * len(proto))
        first = proto.extra.get("first_tokens")
        if not isinstance(first, list) or len(first) != len(proto):
            raise PrototokError(f"a '{HC_LAYOUT}' file for a model without BOS needs extra['first_tokens'], one a text")
        vocab = lm.model.get_input_embeddings().weight.shape[0]
        bad = [t for t in first if not (isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab)]
        if bad:  # an id past the vocabulary would index outside the embedding table
            raise PrototokError(
                f"a '{HC_LAYOUT}' file's first_tokens must be token ids of this model (0 to {vocab - 1}); it holds "
                f"{str(bad[0])[:40]}"
            )
        gen = generate_tokens(lm, mems, [n - 1 for n in proto.lengths], batch_size, [[t] for t in first])
        return [[t, *g] for t, g in zip(first, gen)]


def check_context(lm: LoadedModel, proto: ProtoTokens, extra: int) -> None:
    """Refuse, before any forward, a file whose longest text needs more positions (its length plus `extra`:
    the [mem] vectors and lead tokens, less the last token, which is never an input) than the model's context:
    an edited file must not run generation past it."""
    need = max(proto.lengths) + extra
    if need > lm.max_positions:
        raise PrototokError(
            f"a '{proto.layout}' file with a text of {max(proto.lengths)} tokens needs {need} positions, more than "
            f"the model's context ({lm.max_positions})"
        )


def mem_of(proto: ProtoTokens) -> torch.Tensor:
    """The (T, K, d) mem vectors of a cramming file, after checking it is one."""
    if proto.layout not in (MEM_LAYOUT, HC_LAYOUT):
        raise PrototokError(f"layout '{proto.layout}' is one-pass proto-tokens, not cramming [mem] vectors")
    e, k = proto.e, proto.extra.get("num_mem")
    if e.ndim != 3 or e.shape[0] != len(proto) or e.shape[1] != k or proto.m.numel() != 0:
        raise PrototokError(
            f"a '{proto.layout}' file needs e of shape (T, K, d) with K = num_mem = {k} and an empty m; "
            f"got e {tuple(e.shape)}, m {tuple(proto.m.shape)}"
        )
    return e
