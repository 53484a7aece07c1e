"""Train the proto-token encoder end to end through the frozen LM, with the fitter's one-pass loss.

Data: every sample is a token window of a corpus text, drawn from its own generator seeded by (seed, sample
index). So the stream is a pure function of the step: resuming needs only the step, and under torchrun rank r
of W simply takes its slice of each global batch. --batch-size is the global batch; the gradient that DDP
averages over ranks is the single-process gradient of that batch, whatever W is.

Checkpoints (rank 0, every K steps and at the end), each file written atomically (prototok.files):
encoder.safetensors + encoder.json (what amortised_encode reads) and train_state.pt (what --resume reads:
weights, AdamW state, every rank's RNG state, step).

Shapes: b texts on this rank (the global batch / world), D the LM's hidden size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path

import torch

from ..distributed import Dist, setup
from ..errors import PrototokError
from ..files import atomic_write, atomic_write_text, read_text
from ..fit import init_id
from ..layouts import DEFAULT_LAYOUT, Layout, get_layout
from ..models import DEFAULT_MODEL, LoadedModel, load_model
from ..sources import SOURCES, load_samples
from ..sources.local_files import from_files
from .checkpoint import check_encoder_model, config_from_meta, save_encoder
from .model import EncoderConfig, ProtoEncoder, one_pass_loss, token_batch

STATE = "train_state.pt"
LOG = "train_log.jsonl"
log = logging.getLogger("prototok")


@dataclass(frozen=True)
class TrainConfig:
    """One training run; one help line per field. Stored in every checkpoint and checked on resume."""

    model: str = DEFAULT_MODEL
    min_len: int = 8  # shortest training window, tokens
    max_len: int = 16  # longest training window, tokens (also the encoder's max_len)
    steps: int = 1000  # total optimiser steps (the cosine schedule spans them)
    batch_size: int = 16  # global: split evenly over torchrun ranks
    lr: float = 1e-3  # AdamW peak learning rate
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01  # on weight matrices only
    warmup: int = 20  # linear warm-up steps, then cosine down to min_lr_ratio * lr
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    ckpt_every: int = 100
    log_every: int = 10  # loss is read back (a device sync) only this often
    seed: int = 0
    layout: str = DEFAULT_LAYOUT
    holdout: float = 0.05  # fraction of corpus texts (by text hash) kept out of training for `encoder eval`
    width: int = 256
    layers: int = 2
    heads: int = 4
    dropout: float = 0.0
    predict_m: bool = False
    reader: str = "embeddings"  # what the encoder reads: the LM's token embeddings, or "lm": its hidden states
    reader_layer: int = -1  # with reader "lm": which hidden states (0 = embeddings, -1 = the last layer's)
    e_scale: float = 1.0  # e = e_scale * the encoder's output (50: fast-e50's scale of e against m)

    def __post_init__(self) -> None:
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"TrainConfig needs 1 <= min_len <= max_len, got {self.min_len}, {self.max_len}")
        for name in ("steps", "batch_size", "ckpt_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):  # NaN passes `self.lr <= 0`
            raise ValueError(f"TrainConfig.lr must be a finite number > 0, got {self.lr}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"TrainConfig.holdout must lie in [0, 1), got {self.holdout}")
        _ = self.lay  # resolved now, once: an unknown name is a ValueError naming the legal layouts

    @cached_property
    def lay(self) -> Layout:
        """The layout itself (`layout` is its name, as stored), resolved once."""
        return get_layout(self.layout)

    def encoder_config(self, lm: LoadedModel) -> EncoderConfig:
        return EncoderConfig.for_model(
            lm,
            max_len=self.max_len,
            width=self.width,
            layers=self.layers,
            heads=self.heads,
            dropout=self.dropout,
            predict_m=self.predict_m,
            layout=self.lay.name,
            reader=self.reader,
            reader_layer=self.reader_layer,
            e_scale=self.e_scale,
        )

    def lr_at(self, step: int) -> float:
        """Learning rate for optimiser step `step` (0-based): a function of the step alone, so resume is exact."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        frac = min(1.0, (step - self.warmup) / max(1, self.steps - self.warmup))
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


# Fields that may change on --resume without changing what the run computes up to the resumed step.
RESUMABLE = {"steps", "ckpt_every", "log_every"}


# ---------------------------------------------------------------------------------------------- data


def is_heldout(text: str, fraction: float) -> bool:
    """A fixed split by text hash: the same texts are held out in every run and by `encoder eval`."""
    h = int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)
    return h < fraction * 16**8


# Samples the encoder takes from a named data source (wiki, austen, hf:...) are cut this long: one or two
# sentences, a few times max_len tokens (the experiments cut much longer samples, EXPERIMENT_MIN_CHARS).
# Train and eval must use the same value: it fixes where the source's windows fall, and so which texts the
# hash split holds out.
ENCODER_MIN_CHARS = 200


def training_texts(specs: list[str] | tuple[str, ...], samples: int = 5000, seed: int = 0) -> list[str]:
    """--data values: a .txt file (one text per non-empty line), a folder of them, a source name of
    prototok.sources (wiki, austen, hf:...: `samples` windows from it), or else the text itself."""
    texts: list[str] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir() or path.is_file():
            for _, doc in from_files(spec):  # a folder: its .txt files, sorted by path
                texts += [line.strip() for line in doc.splitlines() if line.strip()]
        elif spec.partition(":")[0] in SOURCES:  # before the path test: hf:user/name holds a "/"
            texts += [s.text for s in load_samples(spec, samples, seed=seed, min_chars=ENCODER_MIN_CHARS)]
        elif spec.endswith(".txt") or os.sep in spec:
            raise PrototokError(f"--data {spec}: no such file or folder")
        else:
            texts.append(spec)  # not a path nor a source name: the text itself
    return texts


class Corpus:
    """Tokenised training texts and the sample stream over them."""

    def __init__(self, lm: LoadedModel, texts: list[str], cfg: TrainConfig):
        keep = [t for t in dict.fromkeys(texts) if t.strip() and not is_heldout(t, cfg.holdout)]
        ids = lm.tokenizer(keep, add_special_tokens=False)["input_ids"] if keep else []
        self.ids = [list(x) for x in ids if len(x) >= cfg.min_len]
        if not self.ids:
            raise PrototokError(
                f"no training text has >= {cfg.min_len} tokens ({len(texts)} given, {len(keep)} after the holdout)"
            )
        self.cfg = cfg

    def sample(self, index: int) -> list[int]:
        """Sample `index` of the stream: half start at a text's beginning (as held-out texts do), half anywhere."""
        c = self.cfg
        g = torch.Generator().manual_seed(init_id(c.seed, index))
        toks = self.ids[int(torch.randint(len(self.ids), (1,), generator=g))]
        n = int(torch.randint(c.min_len, min(c.max_len, len(toks)) + 1, (1,), generator=g))
        start = 0
        if torch.rand(1, generator=g).item() < 0.5:
            start = int(torch.randint(len(toks) - n + 1, (1,), generator=g))
        return toks[start : start + n]

    def batch(self, step: int, rank: int = 0, world: int = 1) -> list[list[int]]:
        """This rank's slice of global batch `step`: the same samples whatever the world size."""
        b = self.cfg.batch_size // world
        first = step * self.cfg.batch_size + rank * b
        return [self.sample(first + j) for j in range(b)]


def snippets(lm: LoadedModel, texts: list[str], min_len: int, max_len: int, n: int, seed: int = 0) -> list[str]:
    """Up to n evaluation texts: prefixes of the given texts cut at a token boundary, their lengths cycling
    through min_len..max_len so every length is measured; a prefix is kept only if it re-tokenises the same."""
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed)).tolist()
    lengths = list(range(min_len, max_len + 1))
    out: list[str] = []
    for i in order:
        if len(out) == n:
            break
        want = lengths[len(out) % len(lengths)]
        enc = lm.tokenizer(texts[i], add_special_tokens=False, return_offsets_mapping=True)
        if len(enc["input_ids"]) < want:
            continue
        cut = texts[i][: enc["offset_mapping"][want - 1][1]]
        if lm.tokenizer(cut, add_special_tokens=False)["input_ids"] == enc["input_ids"][:want]:
            out.append(cut)
    return out


# ---------------------------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    encoder: ProtoEncoder  # this rank's copy (all ranks hold the same weights)
    metrics: dict  # the last logged step: loss, token accuracy, lr, seconds


def _rng_state() -> dict:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _optimizer(enc: ProtoEncoder, cfg: TrainConfig) -> torch.optim.AdamW:
    """Weight decay on weight matrices only: not on biases, norms, positions, queries or the shared m."""
    decay, rest = [], []
    for name, p in enc.named_parameters():
        (decay if p.ndim == 2 and name not in ("pos", "query", "m") else rest).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def _check_resume(saved: dict, cfg: TrainConfig, out: Path) -> None:
    """A resumed run must compute what the straight run would: only RESUMABLE fields may change."""
    old = saved["train_config"]
    for f in fields(TrainConfig):
        if f.name in RESUMABLE or f.name not in old:
            continue
        was, now = old[f.name], getattr(cfg, f.name)
        if (list(was) if isinstance(was, tuple | list) else was) != (list(now) if isinstance(now, tuple) else now):
            raise PrototokError(f"--resume: {out} was trained with {f.name}={was!r}, not {now!r}")
    if old.get("steps") != cfg.steps:
        log.warning("--resume: steps changed %s -> %s; the schedule changes too", old.get("steps"), cfg.steps)


def _resume(out: Path, cfg: TrainConfig, lm: LoadedModel, enc: ProtoEncoder, opt, d: Dist) -> int:
    """Load train_state.pt into enc and opt, restore this rank's RNG; returns the step to continue from."""
    saved = torch.load(out / STATE, map_location="cpu", weights_only=True)
    _check_resume(saved, cfg, out)
    where = f"--resume: {out}"
    check_encoder_model(config_from_meta({"config": saved["encoder_config"]}, where), lm, where)
    enc.load_state_dict(saved["encoder"])
    opt.load_state_dict(saved["optimizer"])
    rngs = saved["rng"]
    _set_rng_state(rngs[d.rank] if len(rngs) == d.world else rngs[0])
    return saved["step"]


def _save(out: Path, enc: ProtoEncoder, opt, step: int, cfg: TrainConfig, rngs: list[dict], world: int) -> None:
    meta = {"step": step, "train": asdict(cfg)}
    save_encoder(enc, out, meta)
    state = {
        "step": step,
        "samples_seen": step * cfg.batch_size,  # the data position: the stream is a function of it
        "encoder": enc.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": rngs,  # one per rank
        "world_size": world,
        "train_config": asdict(cfg),
        "encoder_config": asdict(enc.cfg),
    }
    atomic_write(out / STATE, lambda tmp: torch.save(state, tmp))


def train_encoder(
    cfg: TrainConfig,
    texts: list[str],
    out: str | Path,
    *,
    lm: LoadedModel | None = None,
    device: str | None = None,
    resume: bool = False,
    stop_at: int | None = None,
    max_minutes: float | None = None,
    keep_every: int | None = None,
    progress: bool = True,
    report_to: str | None = None,
    dtype: str | None = None,
    revision: str | None = None,
) -> TrainResult:
    """Train (or resume) an encoder into folder `out`.

    stop_at: stop after this many steps (with a checkpoint) although the schedule spans cfg.steps; resume
    later with resume=True. max_minutes: the same, once this much wall time has passed (a CPU budget).
    keep_every: also keep the encoder's weights every K steps in `out`/step-NNNNNN (each a checkpoint folder
    that `encoder eval` reads), so that a learning curve can be measured on held-out texts after the run.
    report_to="tensorboard": also log loss, accuracy and lr to TensorBoard event files in `out`/tensorboard
    (needs the tensorboard package: the `tensorboard` extra), besides the JSON lines of train_log.jsonl.
    Under torchrun every rank calls this; rank 0 alone writes. A process group this call joins, it also
    leaves (so a Python caller may train again); one that the caller set up stays.
    """
    writer_cls = tensorboard_writer(report_to)  # a missing package is refused before anything loads
    started = not torch.distributed.is_initialized()
    d, device = setup(device)
    if cfg.batch_size % d.world:
        raise PrototokError(f"--batch-size {cfg.batch_size} must be a multiple of the {d.world} torchrun ranks")
    out = Path(out)
    if (out / STATE).exists() and not resume:
        raise PrototokError(f"{out} already holds a training run: pass --resume to continue it, or another --out")
    if resume and not (out / STATE).exists():
        raise PrototokError(f"--resume: no {STATE} in {out}")
    lm = lm or load_model(cfg.model, device, dtype, revision)
    corpus = Corpus(lm, texts, cfg)
    torch.manual_seed(cfg.seed)  # the same init on every rank (DDP broadcasts rank 0's anyway)
    enc = ProtoEncoder(cfg.encoder_config(lm)).to(lm.device)
    opt = _optimizer(enc, cfg)
    step = _resume(out, cfg, lm, enc, opt, d) if resume else 0
    model = enc
    if d.active:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(enc, device_ids=[lm.device.index] if lm.device.type == "cuda" else None)
    end = min(cfg.steps, stop_at if stop_at is not None else cfg.steps)
    bar = None
    if progress and d.rank == 0:
        from ..progress import ProgressBar

        bar = ProgressBar(cfg.steps, "encoder", "step", initial=step)
    writer = None
    if d.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _trim_log(out / LOG, step)
        if writer_cls is not None:
            writer = writer_cls(log_dir=str(out / "tensorboard"), purge_step=step or None)
    last: dict = {"step": step}
    run_loss = torch.zeros((), device=lm.device)
    run_acc = torch.zeros((), device=lm.device)
    since, t0 = 0, time.perf_counter()
    model.train()
    while step < end:
        toks = corpus.batch(step, d.rank, d.world)
        for g in opt.param_groups:
            g["lr"] = cfg.lr_at(step)
        e, m = model(*token_batch(lm, toks, enc.cfg.reader, enc.cfg.reader_layer))  # (b, D), (b or 1, D)
        loss, correct = one_pass_loss(lm, e, m, toks, cfg.lay)  # (b,), (b,)
        loss.mean().backward()  # DDP averages over ranks: the global batch's mean per-text loss
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(enc.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if max_minutes is not None and _out_of_time(t0, max_minutes, d, lm.device):
            end = step  # checkpoint below, then stop; --resume continues on the same schedule
        run_loss += loss.detach().mean()
        run_acc += (correct.float() / torch.tensor([len(t) for t in toks], device=correct.device)).mean()
        since += 1
        if bar and step % cfg.log_every and step != end:
            bar.update(step, chunk=False)  # a line per log interval (below) when stderr is not a terminal
        if step % cfg.log_every == 0 or step == end:
            stats = torch.stack([run_loss, run_acc]) / since  # (2,)
            if d.active:
                torch.distributed.all_reduce(stats, group=d.group)
                stats /= d.world
            lo, acc = stats.tolist()  # the one sync per log interval
            last = {
                "step": step,
                "loss": round(lo, 5),
                "accuracy": round(acc, 5),
                "lr": cfg.lr_at(step - 1),
                "seconds": round(time.perf_counter() - t0, 2),
            }
            run_loss.zero_()
            run_acc.zero_()
            since = 0
            if d.rank == 0:
                with open(out / LOG, "a") as f:
                    f.write(json.dumps(last) + "\n")
                if writer is not None:
                    for k in ("loss", "accuracy", "lr"):
                        writer.add_scalar(f"train/{k}", last[k], step)
                    writer.flush()
                if bar:
                    bar.update(step, loss=f"{lo:.3f}", acc=f"{acc:.3f}")
        if step % cfg.ckpt_every == 0 or step == end:
            rngs = d.exchange(_rng_state())  # every rank's, in rank order: resume restores each
            if d.rank == 0:
                _save(out, enc, opt, step, cfg, rngs, d.world)
        if keep_every and step % keep_every == 0 and d.rank == 0:
            save_encoder(enc, out / kept_name(step), {"step": step, "train": asdict(cfg)})
    if bar:
        bar.close()
    if writer is not None:
        writer.close()
    d.barrier()
    if started:
        d.close()
    return TrainResult(enc.eval(), last)


def kept_name(step: int) -> str:
    """The folder of the weights kept at `step` (zero-padded, so that a listing sorts by step)."""
    return f"step-{step:06d}"


REPORT_TO = ("none", "tensorboard")


def tensorboard_writer(report_to: str | None):
    """torch's SummaryWriter class for report_to="tensorboard", None for none; a one-line error naming the extra
    when the tensorboard package is missing."""
    if report_to in (None, "none"):
        return None
    if report_to != "tensorboard":
        raise PrototokError(f"unknown --report-to '{report_to}': use one of {', '.join(REPORT_TO)}")
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise PrototokError(
            "--report-to tensorboard needs the tensorboard package: pip install 'prototok[tensorboard]'"
        ) from None
    return SummaryWriter


def _out_of_time(t0: float, minutes: float, d: Dist, device: torch.device) -> bool:
    """Rank 0's clock decides for all ranks, so that they stop at the same step."""
    late = torch.tensor(float(time.perf_counter() - t0 > minutes * 60), device=device)
    if d.active:
        torch.distributed.broadcast(late, 0, group=d.group)
    return bool(late.item())


def _trim_log(path: Path, step: int) -> None:
    """After a resume, drop log lines past the checkpoint so that no step is logged twice."""
    if not path.exists():
        return
    keep = [line for line in read_text(path).splitlines() if line and json.loads(line)["step"] <= step]
    atomic_write_text(path, "".join(line + "\n" for line in keep))
