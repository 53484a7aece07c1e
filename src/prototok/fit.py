"""Fit proto-tokens: continuous batching of texts through one frozen model.

run_slots is the one batching loop every method uses (the cramming baseline too): a method hands it its
per-slot parameters and how to initialise and score a slot (Slots); fit() is the one-pass method's use of it
(fit takes names and resolves them once; fit_resolved, below it, takes the Layout and the Recipe). FitState
is one fit's bookkeeping (its best, when it stalls, whether a redraw is affordable), for a text and a group alike.

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
from dataclasses import dataclass, field

import torch

from .errors import PrototokError
from .layouts import DEFAULT_LAYOUT, Layout, get_layout
from .models import LoadedModel
from .onepass import check_finite, compiled_backbone, layout_scores
from .optimizers import RowAdamW, make_optimizer
from .precision import PRECISIONS, exact_matmuls, fit_precision, of_model
from .recipes import Recipe, resolve_recipe


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
    precision: str = ""  # what the fit computed in (prototok.precision.Precision.name)


@dataclass
class FitProgress:
    step: int  # fitter steps so far (one forward+backward each)
    done: int
    total: int
    active_accuracy: float  # mean accuracy of the texts in the batch now
    solved: int
    prefix: int = 0  # walking a text through its prefixes (prototok.walk): the prefix length being fitted now


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
    precision: str = "auto",
) -> list[FitResult]:
    """Find (e, m) for each token list; results come back in input order.

    The entry point by name: the layout and the recipe (a spec; None: the default for `share`) are resolved
    here, once, and the recipe checked for `share`; fit_resolved does the fitting (see it for the options).
    """
    lay = get_layout(layout) if isinstance(layout, str) else layout
    rec = resolve_recipe(recipe, share)
    return fit_resolved(lm, token_lists, lay, rec, seed=seed, share=share, batch_size=batch_size, progress=progress,
                        warm_start=warm_start, compile=compile, init_ids=init_ids, on_result=on_result,
                        process_group=process_group, precision=precision)  # fmt: skip


def fit_resolved(
    lm: LoadedModel,
    token_lists: list[list[int]],
    lay: Layout,
    rec: Recipe,
    *,
    seed: int = 0,
    share: str = "none",
    batch_size: int = 8,
    progress: Callable[[FitProgress], None] | None = None,
    warm_start: list[tuple[torch.Tensor, torch.Tensor] | None] | None = None,
    compile: bool = False,
    init_ids: list[int] | None = None,
    on_result: Callable[[FitResult], None] | None = None,
    process_group=None,
    precision: str = "auto",
) -> list[FitResult]:
    """fit() below its entry point: the layout and recipe are objects, the recipe already checked for `share`
    (recipes.resolve_recipe), so a method or a caller that resolved them once passes them on as they are.

    warm_start: a (d,) pair (e, m) per text to start from instead of a random draw (a learned encoder's
    output, or the solution of a shorter prefix), None for a text that draws; a restart still draws at random.
    A group sharing a vector starts warm only as a whole (a pair for every text, else it draws): its per-text
    vector from each text's own, the shared one from their mean (one vector when they came from one group).
    Under an AdamW-then-L-BFGS recipe a warm-started text skips the AdamW steps (they exist to find a basin).
    compile: run every step at one fixed shape (all slots, longest text) through a torch.compile'd backbone
    (CUDA graphs on GPU), which removes the per-kernel launch overhead that dominates small steps.
    init_ids: the id that seeds each text's init stream (default: its index), so a text resumed or fitted
    in another call, on another rank, starts from the same draw. on_result: called as each text finishes
    (per-text m only), so callers can commit results while the batch keeps going.
    process_group (share "m"/"e" only): a torch.distributed group whose ranks all pass the same group and
    seed; rank r fits texts i with i % world == r, the shared vector's gradient and the group's score are
    summed over ranks, so all take the same steps and hold the same shared vector. Returns rank r's texts only.
    precision: "auto" applies the precision rule (prototok.precision: an L-BFGS recipe runs in plain fp32, no
    autocast, no TF32; on bf16/fp16 weights it warns); "model" runs as the model computes (benchmarks of the
    unsafe settings). Each result records the precision it ran at.
    """
    if not token_lists or any(len(t) == 0 for t in token_lists):
        raise PrototokError("nothing to fit: every text needs at least one token")
    too_long = max(lay.length(len(t)) for t in token_lists)
    if too_long > lm.max_positions:
        raise PrototokError(f"layout needs {too_long} positions, more than the model's context ({lm.max_positions})")
    if warm_start is not None and len(warm_start) != len(token_lists):
        raise ValueError("warm_start needs one (e, m) pair (or None) per text")
    if process_group is not None and share == "none":
        raise ValueError("process_group needs share='m' or 'e': per-text vectors need no all-reduce")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got '{precision}'")
    lm, prec = fit_precision(lm, rec) if precision == "auto" else (lm, of_model(lm))
    with exact_matmuls(prec):
        if share == "none":
            results = _fit_queue(lm, token_lists, lay, rec, seed=seed, batch_size=batch_size, progress=progress,
                                 warm_start=warm_start, compile=compile, init_ids=init_ids,
                                 on_result=on_result)  # fmt: skip
        else:
            if process_group is not None and len(token_lists) < torch.distributed.get_world_size(process_group):
                world = torch.distributed.get_world_size(process_group)
                raise ValueError(f"process_group of {world} ranks needs a group of at least {world} texts")
            whole = warm_start if warm_start is not None and all(w is not None for w in warm_start) else None
            results = _fit_group(lm, token_lists, lay, rec, seed, share, progress, process_group, whole)
    for r in results:
        r.precision = prec.name
    return results


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


@dataclass
class FitState:
    """One fit in progress (a text in a slot of run_slots, or a group of _fit_group): its best evaluation and the
    counters that decide when it stops or is redrawn. The score is what "better" means: a text's token
    accuracy, a group's tokens right; ties go to the lower loss. The best over all draws is kept."""

    index: int = 0  # the text (its position in the input list); a group's state leaves it 0
    gen: torch.Generator | None = None  # the text's init stream (redraws draw from it too)
    warm: bool = False  # started from a given state, not a draw (recipe.warm_redraw_evals); False once redrawn
    steps: int = 0  # optimiser steps taken
    started: float = field(default_factory=time.perf_counter)
    best: tuple[float, float] | None = None  # (score, -loss) of the best evaluation
    best_step: int = 0  # steps taken before it
    best_loss: float = math.inf
    best_state: object = None  # what the caller keeps of it (observe's True says when)
    since_best: int = 0  # evaluations without a new best (recipe.restart_after)
    since_better: int = 0  # evaluations without a higher score (run_slots' patience)
    draw_best: float = -math.inf  # this draw's highest score
    since_rise: int = 0  # evaluations in which it did not rise (recipe.stall_after)
    # a given (warm) start's own score is not the bar a stall is judged against: its prefix tokens start right
    # and dip while the new ones are learnt, which would read as a stall (seen at N=64 of a warm walk)
    skip_first: bool = field(init=False)

    def __post_init__(self) -> None:
        self.skip_first = self.warm

    def observe(self, score: float, loss: float) -> bool:
        """Count one evaluation; True when it is the new best (higher score, then lower loss), whose state the
        caller then keeps in best_state."""
        self.since_better = 0 if self.best is None or score > self.best[0] else self.since_better + 1
        if self.skip_first:
            self.skip_first = False
        else:
            self.since_rise = 0 if score > self.draw_best else self.since_rise + 1
            self.draw_best = max(self.draw_best, score)
        if self.best is None or (score, -loss) > self.best:
            self.best, self.best_step, self.best_loss, self.since_best = (score, -loss), self.steps, loss, 0
            return True
        self.since_best += 1
        return False

    def stalled(self, recipe: Recipe) -> bool:
        """This draw's score stopped rising (recipe.stall_after), or no new best came (recipe.restart_after)."""
        if recipe.stall_after and self.since_rise >= recipe.stall_after:
            return True
        return bool(recipe.restart_after and self.since_best >= recipe.restart_after)

    def redraw_due(self, recipe: Recipe, tokens: int) -> bool:
        """Stalled, and a fresh draw of `tokens` tokens could still finish in the evaluations left (for a warm
        start, its own budget: Recipe.redraw_affordable)."""
        return self.stalled(recipe) and recipe.redraw_affordable(recipe.max_steps - self.steps, tokens, self.warm)

    def redrawn(self) -> None:
        """A fresh random draw replaced the vectors: its own stall counters start over (the best is kept)."""
        self.warm = False  # warm_redraw_evals guarded only the given start
        self.since_best = self.since_rise = 0
        self.draw_best = -math.inf

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def kept(self) -> Kept:
        """The text's outcome: its best evaluation (never a finite one under a tolerant optimiser: an error)."""
        if not math.isfinite(self.best_loss):
            check_finite(torch.tensor(self.best_loss))
        return Kept(self.index, self.best_state, self.best[0], self.best_step, self.best_loss, self.seconds,
                    self.steps + 1)  # fmt: skip


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
    slot: list[FitState | None] = [None] * size  # the text in each slot, and its fit so far
    kept: list[Kept | None] = [None] * n
    step = 0

    def fill(s: int) -> None:
        i = queue.popleft()
        gen = init_stream(seed, ids[i])
        with torch.no_grad():
            warm = bool(slots.init(s, i, gen, False))
        opt.reset(s, warm=warm)
        slot[s] = FitState(i, gen, warm)

    def finish(s: int) -> None:
        k = kept[slot[s].index] = slot[s].kept()
        slot[s] = None
        if on_done:
            on_done(k)

    while queue or any(st is not None for st in slot):
        for s in range(size):
            if slot[s] is None and queue:
                fill(s)
        batch = list(range(size)) if fixed_shape else [s for s in range(size) if slot[s] is not None]
        toks = [token_lists[slot[s].index] if slot[s] is not None else [] for s in batch]
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
            st = slot[s]
            if st is None:
                continue
            acc = correct[j].item() / len(toks[j]) if math.isfinite(loss[j]) else 0.0
            if st.observe(acc, loss[j].item()):
                st.best_state = slots.keep(s)
            if acc >= 1.0 or st.steps >= recipe.max_steps or (patience and st.since_better >= patience):
                finish(s)
                continue
            if st.redraw_due(recipe, len(toks[j])):
                with torch.no_grad():
                    slots.init(s, st.index, st.gen, True)
                opt.reset(s)
                st.redrawn()
            else:  # a freshly re-drawn row waits for its own gradient
                updating.append(s)
                at.append(j)
            st.steps += 1
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


def _fit_group(
    lm: LoadedModel,
    token_lists: list[list[int]],
    lay: Layout,
    rec: Recipe,
    seed: int,
    share: str,
    progress: Callable[[FitProgress], None] | None,
    group=None,
    warm_start: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> list[FitResult]:
    """One group sharing e or m: trained jointly; the kept state is the group's best (most tokens right).
    warm_start: a pair per text of the whole group (every rank passes all of them), the first state instead of a
    draw: per-text rows from each text's own, the shared row from their mean; a redraw draws.

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

    E, M = draw()
    if warm_start is not None:
        es, ms = (torch.stack([w[k].reshape(d).to(torch.float32) for w in warm_start]) for k in (0, 1))
        E, M = (es[mine], ms.mean(0, keepdim=True)) if share == "m" else (es.mean(0, keepdim=True), ms[mine])
    E, M = (p.to(dev).clone().requires_grad_() for p in (E, M))
    shared = M if share == "m" else E
    opt = RowAdamW([E, M], rec, [rec.e_scale, 1.0])
    lengths = torch.tensor([len(t) for t in texts])
    rows = torch.arange(len(texts), device=dev)
    state = FitState(warm=warm_start is not None)  # the group's: scored by its tokens right, redrawn as a whole
    while True:
        loss, correct = layout_scores(lm, lay, E, M, texts, focal=rec.focal_gamma)
        total = loss.sum()
        check_finite(total)
        loss, correct = loss.detach().cpu(), correct.cpu()
        if group is None:
            right, tot, solved = correct.sum().item(), total.item(), bool((correct == lengths).all())
        else:  # the whole group's score: one all-reduce, and .tolist() is this step's one sync
            parts = [correct.sum(), total.detach().cpu(), (correct != lengths).sum()]
            score = torch.stack([p.double() for p in parts]).to(dev)  # (3,): tokens right, loss, texts unsolved
            torch.distributed.all_reduce(score, group=group)
            right, tot, unsolved = score.tolist()
            solved = unsolved == 0
        if state.observe(right, tot):
            state.best_state = (E.detach().cpu().clone(), M.detach().cpu().clone(), loss, correct)
        if progress:
            progress(FitProgress(state.steps, 0, n, (correct / lengths).mean().item(), int((correct == lengths).sum())))
        if solved or state.steps == rec.max_steps:
            break
        total.backward()
        if group is not None:  # sum of every rank's gradient: the gradient one process would get
            torch.distributed.all_reduce(shared.grad, group=group)
        opt.step(rows)
        if state.redraw_due(rec, int(lengths.max())):  # the group as a whole
            with torch.no_grad():
                e0, m0 = draw()
                E.copy_(e0)
                M.copy_(m0)
            opt = RowAdamW([E, M], rec, [rec.e_scale, 1.0])
            state.redrawn()
        state.steps += 1
    e_b, m_b, loss, correct = state.best_state
    secs = state.seconds
    return [
        FitResult(
            i,
            token_lists[i],
            e_b[min(k, e_b.shape[0] - 1)],
            m_b[min(k, m_b.shape[0] - 1)],
            correct[k].item() / len(texts[k]),
            state.best_step,
            loss[k].item(),
            secs,
            bool(correct[k] == len(texts[k])),
            state.steps + 1,
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
