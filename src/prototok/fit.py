"""Fit proto-tokens: continuous batching of texts through one frozen model.

run_slots is the one batching loop every method uses (the cramming baseline too): a method hands it its
per-slot parameters and how to initialise and score a slot (Slots); fit() is the one-pass method's use of it.

Per-text vectors (share="none"): a queue of texts feeds `batch_size` slots; a text leaves its slot when
solved (100% token accuracy) or out of steps, and the next takes it, so the batch stays full. Each text
has its own init stream, step count and optimiser state, so its trajectory does not depend on which
texts share the batch. Shared vectors (share="m" or "e"): the texts form one group trained jointly
until all are solved, and the group's best joint state is kept.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import PrototokError
from .layouts import DEFAULT_LAYOUT, Layout, get_layout
from .models import LoadedModel
from .onepass import check_finite, compiled_backbone, layout_scores
from .optimizers import RowAdamW, make_optimizer
from .recipes import Recipe, check_shareable, default_recipe, get_recipe

SHARES = ("none", "m", "e")


@dataclass
class FitResult:
    index: int  # position in the input list
    tokens: list[int]
    e: torch.Tensor  # (d,) on CPU
    m: torch.Tensor  # (d,) on CPU
    accuracy: float  # token accuracy of the kept solution
    steps: int  # optimiser steps taken before the kept solution
    loss: float  # cross-entropy (nats/token) of the kept solution
    seconds: float  # wall time the text spent in the fitter
    solved: bool
    steps_run: int = 0  # forward+backward passes the text took part in (the work it cost)


@dataclass
class FitProgress:
    step: int  # fitter steps so far (one forward+backward each)
    done: int
    total: int
    active_accuracy: float  # mean accuracy of the texts in the batch now
    solved: int


def init_scale(lm: LoadedModel, recipe: Recipe) -> float:
    if recipe.init == "embedding":
        return recipe.init_scale * lm.model.get_input_embeddings().weight.float().std().item()
    return recipe.init_scale


def _draw(gen: torch.Generator, d: int, scale: float) -> torch.Tensor:
    return torch.randn(d, generator=gen) * scale  # CPU stream: the same vectors on any device


def fit(
    lm: LoadedModel,
    token_lists: list[list[int]],
    *,
    layout: str | Layout = DEFAULT_LAYOUT,
    recipe: str | Recipe | None = None,
    seed: int = 0,
    share: str = "none",
    batch_size: int = 8,
    progress: Callable[[FitProgress], None] | None = None,
    warm_start: list[tuple[torch.Tensor, torch.Tensor] | None] | None = None,
    compile: bool = False,
    init_ids: list[int] | None = None,
    on_result: Callable[[FitResult], None] | None = None,
    process_group=None,
) -> list[FitResult]:
    """Find (e, m) for each token list; results come back in input order.

    warm_start: a (d,) pair (e, m) per text to start from instead of a random draw (a learned encoder's
    output, or the solution of a shorter prefix), None for a text that draws; a restart still draws at random.
    Under an AdamW-then-L-BFGS recipe a warm-started text skips the AdamW steps (they exist to find a basin).
    compile: run every step at one fixed shape (all slots, longest text) through a torch.compile'd backbone
    (CUDA graphs on GPU), which removes the per-kernel launch overhead that dominates small steps.
    init_ids: the id that seeds each text's init stream (default: its index), so a text resumed or fitted
    in another call, on another rank, starts from the same draw. on_result: called as each text finishes
    (per-text m only), so callers can commit results while the batch keeps going.
    process_group (share "m"/"e" only): a torch.distributed group whose ranks all pass the same group and
    seed; rank r fits texts i with i % world == r, the shared vector's gradient and the group's score are
    summed over ranks, so all take the same steps and hold the same shared vector. Returns rank r's texts only.
    """
    lay = get_layout(layout) if isinstance(layout, str) else layout
    recipe = default_recipe(share) if recipe is None else recipe
    rec = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if share not in SHARES:
        raise ValueError(f"share must be one of {SHARES}, got '{share}'")
    if not token_lists or any(len(t) == 0 for t in token_lists):
        raise PrototokError("nothing to fit: every text needs at least one token")
    too_long = max(lay.length(len(t)) for t in token_lists)
    if too_long > lm.max_positions:
        raise PrototokError(f"layout needs {too_long} positions, more than the model's context ({lm.max_positions})")
    if warm_start is not None and (share != "none" or len(warm_start) != len(token_lists)):
        raise ValueError("warm_start needs share='none' and one (e, m) pair per text")
    check_shareable(rec, share)
    if process_group is not None and share == "none":
        raise ValueError("process_group needs share='m' or 'e': per-text vectors need no all-reduce")
    if share == "none":
        return _fit_queue(lm, token_lists, lay, rec, seed=seed, batch_size=batch_size, progress=progress,
                          warm_start=warm_start, compile=compile, init_ids=init_ids, on_result=on_result)  # fmt: skip
    if process_group is None:
        return _fit_group(lm, token_lists, lay, rec, seed, share, progress)
    world = torch.distributed.get_world_size(process_group)
    if len(token_lists) < world:
        raise ValueError(f"process_group of {world} ranks needs a group of at least {world} texts")
    return _fit_group(lm, token_lists, lay, rec, seed, share, progress, process_group)


def init_id(seed: int, index: int) -> int:
    """One integer per (seed, index): the seed of a text's (or a group's) own init stream."""
    return seed * 1_000_003 + index


def init_stream(seed: int, index: int) -> torch.Generator:
    """The CPU generator a text's init draws from: one per (seed, text id), so a text starts from the same
    vectors whatever batch, rerun or rank it lands in (and on any device)."""
    return torch.Generator().manual_seed(init_id(seed, index))


@dataclass
class Slots:
    """What a method trains in the batcher: row s of every param belongs to the text in slot s."""

    params: list[torch.Tensor]  # leaf tensors (slots, ...), requires_grad
    lr_scales: list[float]  # per param: its learning rate (and init) relative to the recipe's
    # (slot, text, its stream, restart): fill row in place; True when it placed a given start, not a draw
    init: Callable[[int, int, torch.Generator, bool], bool | None]
    score: Callable[[torch.Tensor, list[list[int]]], tuple[torch.Tensor, torch.Tensor]]  # rows, texts -> loss, right
    keep: Callable[[int], tuple]  # slot -> the state to keep for its text (CPU copies)


@dataclass
class Kept:
    """One text's outcome in the batcher: its best state (highest accuracy, then lowest loss)."""

    index: int
    state: tuple
    accuracy: float
    steps: int  # optimiser steps taken before the kept state
    loss: float
    seconds: float
    steps_run: int  # forward+backward passes the text took part in


def run_slots(
    slots: Slots,
    token_lists: list[list[int]],
    recipe: Recipe,
    *,
    seed: int,
    init_ids: list[int] | None = None,
    patience: int = 0,
    fixed_shape: bool = False,
    progress: Callable[[FitProgress], None] | None = None,
    on_done: Callable[[Kept], None] | None = None,
) -> list[Kept]:
    """Continuous batching: the one loop behind every method's per-text fitting.

    A queue of texts feeds the slots; each step scores the active slots (one forward+backward), keeps each
    text's best state, and a text leaves its slot when solved (accuracy 1.0), at recipe.max_steps, or after
    `patience` steps without a better accuracy (0: never); the next text takes the slot. recipe.restart_after
    re-draws a text's vectors after that many steps without a new best, recipe.stall_after after that many
    without a rise in the current draw's accuracy (the best over all draws is kept; for a warm start, counted
    from its first step, not its starting score, and redrawn only while recipe.warm_redraw_evals per token are
    left; any draw only while recipe.redraw_evals are). fixed_shape scores every slot every step (empty ones
    with no tokens), so a compiled backbone sees one shape.
    """
    n, size = len(token_lists), slots.params[0].shape[0]
    dev = slots.params[0].device
    ids = list(range(n)) if init_ids is None else list(init_ids)
    if len(ids) != n:
        raise ValueError(f"{n} texts but {len(ids)} init_ids")
    opt = make_optimizer(slots.params, recipe, slots.lr_scales)
    queue = deque(range(n))
    text: list[int | None] = [None] * size  # text index in each slot
    gens: list[torch.Generator | None] = [None] * size
    steps, since_best, since_better, started = [0] * size, [0] * size, [0] * size, [0.0] * size
    draw_acc, since_rise = [0.0] * size, [0] * size  # this draw's best accuracy, steps since it rose (stall_after)
    # a given (warm) start's own score is not the bar a stall is judged against: its prefix tokens start right
    # and dip while the new ones are learnt, which would read as a stall (seen at N=64 of a warm walk)
    skip_start = [False] * size
    warm_started = [False] * size  # the slot's text started from a given state (recipe.warm_redraw_evals)
    best: list[tuple | None] = [None] * size  # (accuracy, -loss, steps, state, loss)
    kept: list[Kept | None] = [None] * n
    step = 0

    def fill(s: int) -> None:
        i = queue.popleft()
        text[s], gens[s] = i, init_stream(seed, ids[i])
        with torch.no_grad():
            warm = bool(slots.init(s, i, gens[s], False))
        opt.reset(s, warm=warm)
        skip_start[s] = warm_started[s] = warm
        steps[s] = since_best[s] = since_better[s] = since_rise[s] = 0
        draw_acc[s] = -1.0
        best[s], started[s] = None, time.perf_counter()

    def finish(s: int) -> None:
        acc, _, st, state, loss = best[s]
        if not math.isfinite(loss):  # a tolerant optimiser's text never had one finite evaluation
            check_finite(torch.tensor(loss))
        i = text[s]
        kept[i] = Kept(i, state, acc, st, loss, time.perf_counter() - started[s], steps[s] + 1)
        text[s] = None
        if on_done:
            on_done(kept[i])

    while queue or any(t is not None for t in text):
        for s in range(size):
            if text[s] is None and queue:
                fill(s)
        active = [s for s in range(size) if text[s] is not None]
        batch = list(range(size)) if fixed_shape else active
        toks = [token_lists[text[s]] if text[s] is not None else [] for s in batch]
        loss, correct = slots.score(torch.tensor(batch, device=dev), toks)
        if opt.tolerates_nonfinite:  # a row's non-finite trial is its own failed step (rows never mix)
            loss = torch.where(torch.isfinite(loss), loss, torch.full_like(loss, math.inf))
            torch.where(torch.isfinite(loss), loss, 0.0).sum().backward()
        else:
            check_finite(loss.sum())
            loss.sum().backward()
        loss, correct = loss.detach().cpu(), correct.cpu()  # the one sync per step: slots change on its result
        updating, at = [], []
        for j, s in enumerate(batch):
            if text[s] is None:
                continue
            acc = correct[j].item() / len(toks[j]) if math.isfinite(loss[j]) else 0.0
            since_better[s] = 0 if best[s] is None or acc > best[s][0] else since_better[s] + 1
            if best[s] is None or (acc, -loss[j].item()) > best[s][:2]:
                best[s] = (acc, -loss[j].item(), steps[s], slots.keep(s), loss[j].item())
                since_best[s] = 0
            else:
                since_best[s] += 1
            if acc >= 1.0 or steps[s] >= recipe.max_steps or (patience and since_better[s] >= patience):
                finish(s)
                continue
            if skip_start[s]:
                skip_start[s] = False
            else:
                since_rise[s] = 0 if acc > draw_acc[s] else since_rise[s] + 1
                draw_acc[s] = max(draw_acc[s], acc)
            stalled = recipe.stall_after and since_rise[s] >= recipe.stall_after
            redraw = stalled or (recipe.restart_after and since_best[s] >= recipe.restart_after)
            if redraw and recipe.redraw_affordable(recipe.max_steps - steps[s], len(toks[j]), warm_started[s]):
                with torch.no_grad():
                    slots.init(s, text[s], gens[s], True)
                opt.reset(s)
                warm_started[s] = False  # a random draw now: warm_redraw_evals guarded only the given start
                since_best[s] = since_rise[s] = 0
                draw_acc[s] = -1.0
            else:  # a freshly re-drawn row waits for its own gradient
                updating.append(s)
                at.append(j)
            steps[s] += 1
        if updating:
            opt.step(torch.tensor(updating, device=dev), loss[at])
        for p in slots.params:
            p.grad = None
        step += 1
        if progress:
            live = [j for j in range(len(batch)) if toks[j]]
            progress(
                FitProgress(
                    step,
                    sum(k is not None for k in kept),
                    n,
                    sum(correct[j].item() / len(toks[j]) for j in live) / len(live),
                    sum(k is not None and k.accuracy >= 1.0 for k in kept),
                )
            )
    return kept


def _fit_queue(
    lm: LoadedModel,
    token_lists: list[list[int]],
    lay: Layout,
    rec: Recipe,
    *,
    seed: int,
    batch_size: int,
    progress: Callable[[FitProgress], None] | None,
    warm_start: list[tuple[torch.Tensor, torch.Tensor] | None] | None,
    compile: bool,
    init_ids: list[int] | None,
    on_result: Callable[[FitResult], None] | None,
) -> list[FitResult]:
    """Per-text vectors through run_slots: E and M hold one row per slot."""
    d, dev = lm.hidden_size, lm.device
    scale = init_scale(lm, rec)
    size = max(1, min(batch_size, len(token_lists)))
    E = torch.zeros(size, d, device=dev, requires_grad=True)
    M = torch.zeros(size, d, device=dev, requires_grad=True)
    # fixed shape (every slot, longest text) when compiled: one graph, captured once
    backbone = compiled_backbone(lm) if compile else None
    fixed_len = max(lay.length(len(t)) for t in token_lists) if compile else None

    def init(s: int, i: int, gen: torch.Generator, restart: bool) -> bool:
        E[s], M[s] = _draw(gen, d, scale * rec.e_scale).to(dev), _draw(gen, d, scale).to(dev)
        if warm_start is not None and not restart and warm_start[i] is not None:
            E[s], M[s] = (v.reshape(d).to(dev, torch.float32) for v in warm_start[i])
            return True
        return False

    def score(rows: torch.Tensor, toks: list[list[int]]):
        return layout_scores(lm, lay, E[rows], M[rows], toks, fixed_len, backbone, rec.focal_gamma)

    def keep(s: int) -> tuple:
        return E[s].detach().cpu().clone(), M[s].detach().cpu().clone()

    def result(k: Kept) -> FitResult:
        e, m = k.state
        return FitResult(k.index, token_lists[k.index], e, m, k.accuracy, k.steps, k.loss, k.seconds,
                         k.accuracy >= 1.0, k.steps_run)  # fmt: skip

    kept = run_slots(
        Slots([E, M], [rec.e_scale, 1.0], init, score, keep),
        token_lists,
        rec,
        seed=seed,
        init_ids=init_ids,
        fixed_shape=compile,
        progress=progress,
        on_done=(lambda k: on_result(result(k))) if on_result else None,
    )
    return [result(k) for k in kept]


def _fit_group(lm, token_lists, lay, rec, seed, share, progress, group=None) -> list[FitResult]:
    """One group sharing e or m: trained jointly; the kept state is the group's best (most tokens right).

    group: a process group splitting the texts over its ranks (texts i % world == rank here). Every rank
    draws the whole group's init, as one process would, and keeps its own rows; each step the shared vector's
    gradient and the score (tokens right, loss, texts unsolved) are all-reduced, so best step, restarts and
    stop are the same on every rank and the shared vector stays identical (same grads, same update).
    """
    d, dev, n = lm.hidden_size, lm.device, len(token_lists)
    scale = init_scale(lm, rec)
    gen = torch.Generator().manual_seed(seed)
    rows_e, rows_m = (n, 1) if share == "m" else (1, n)
    mine = list(range(n))  # the texts this process fits
    if group is not None:
        mine = mine[torch.distributed.get_rank(group) :: torch.distributed.get_world_size(group)]
    texts = [token_lists[i] for i in mine]

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        e = torch.stack([_draw(gen, d, scale * rec.e_scale) for _ in range(rows_e)])
        m = torch.stack([_draw(gen, d, scale) for _ in range(rows_m)])
        if group is not None:  # own rows of the per-text vector; the shared one is the same on every rank
            e, m = (e[mine], m) if share == "m" else (e, m[mine])
        return e.to(dev), m.to(dev)

    E, M = (p.requires_grad_() for p in draw())
    shared = M if share == "m" else E
    opt = RowAdamW([E, M], rec, [rec.e_scale, 1.0])
    lengths = torch.tensor([len(t) for t in texts])
    rows = torch.arange(len(texts), device=dev)
    best, since_best, t0 = None, 0, time.perf_counter()
    draw_key, since_rise = None, 0  # this draw's most tokens right, steps since it rose (stall_after)
    for step in range(rec.max_steps + 1):
        loss, correct = layout_scores(lm, lay, E, M, texts, focal=rec.focal_gamma)
        total = loss.sum()
        check_finite(total)
        loss, correct = loss.detach().cpu(), correct.cpu()
        if group is None:
            key, solved = (correct.sum().item(), -total.item()), bool((correct == lengths).all())
        else:  # the whole group's score: one all-reduce, and .tolist() is this step's one sync
            parts = [correct.sum(), total.detach().cpu(), (correct != lengths).sum()]
            score = torch.stack([p.double() for p in parts]).to(dev)  # (3,): tokens right, loss, texts unsolved
            torch.distributed.all_reduce(score, group=group)
            right, tot, unsolved = score.tolist()
            key, solved = (right, -tot), unsolved == 0
        since_rise = 0 if draw_key is None or key[0] > draw_key else since_rise + 1
        draw_key = key[0] if draw_key is None else max(draw_key, key[0])
        if best is None or key > best[0]:
            e_b, m_b = E.detach().cpu().clone(), M.detach().cpu().clone()
            best, since_best = (key, step, e_b, m_b, loss, correct), 0
        else:
            since_best += 1
        if progress:
            progress(FitProgress(step, 0, n, (correct / lengths).mean().item(), int((correct == lengths).sum())))
        if solved or step == rec.max_steps:
            break
        total.backward()
        if group is not None:  # sum of every rank's gradient: the gradient one process would get
            torch.distributed.all_reduce(shared.grad, group=group)
        opt.step(rows)
        stalled = rec.stall_after and since_rise >= rec.stall_after
        restart = stalled or (rec.restart_after and since_best >= rec.restart_after)
        if restart and rec.redraw_affordable(rec.max_steps - step, int(lengths.max())):  # the group as a whole
            with torch.no_grad():
                e0, m0 = draw()
                E.copy_(e0)
                M.copy_(m0)
            opt = RowAdamW([E, M], rec, [rec.e_scale, 1.0])
            since_best, since_rise, draw_key = 0, 0, None
    _, st, e_b, m_b, loss, correct = best
    secs = time.perf_counter() - t0
    return [
        FitResult(
            i,
            token_lists[i],
            e_b[min(k, e_b.shape[0] - 1)],
            m_b[min(k, m_b.shape[0] - 1)],
            correct[k].item() / len(texts[k]),
            st,
            loss[k].item(),
            secs,
            bool(correct[k] == len(texts[k])),
            step + 1,
        )
        for k, i in enumerate(mine)
    ]


def time_step(step: Callable[[], torch.Tensor]) -> float:
    """Wall time of one forward+backward (step() returns the loss to backpropagate), after one warm-up call.
    The .item() on the loss's gradient-carrying input syncs the device, so the time is the step's own."""
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        with torch.enable_grad():
            loss = step()
            loss.sum().backward()
        loss.detach().sum().item()
        times.append(time.perf_counter() - t0)
    return times[-1]
