"""Long texts through their own prefixes: fit each text's prefix at every grid length below its own, each from the
previous prefix's solution, then the whole text from the longest prefix's.

Why: a cold fit of a long text starts from a random draw that must find every token at once, while under the
causal layouts a prefix's solution already writes the text's beginning (the first outputs depend on the first
inputs only). On this project's CPU the warm capacity walks (the same steps, one grid length at a time)
reconstructed 3 of 4 wiki texts at 128 tokens in 17-21 idle minutes each, and every wiki text at 64, where cold
fits of held-out 64-token texts solved 3 of 4 (docs/findings/long-texts.md). `encode` walks by default for texts
longer than WALK_ABOVE tokens; it reconstructed a held-out 128-token wiki text exactly in about 3150 evaluations (the
last 647 refining a 125/128 start that a redraw would have thrown away), where a cold 128-token text had ended at
0.930 after 2000 (the same page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from .fit import FitProgress, FitResult, fit_resolved
from .layouts import Layout
from .models import LoadedModel
from .recipes import Recipe

# The papers' length grid (factor sqrt 2), which the capacity walks climb too.
GRID = (4, 5, 8, 11, 16, 22, 32, 45, 64, 90, 128, 181, 256, 362, 512, 724, 1024, 1448)
WALK_ABOVE = 64  # from 64 tokens on the walks were measured ahead of cold fits (the module docstring)
PREFIX_CAP = 1500  # evaluations per intermediate prefix: the cap the measured capacity walks ran under


def walk_lengths(n: int, grid: tuple[int, ...] = GRID) -> list[int]:
    """The prefix lengths a text of n tokens is fitted at, ending with n itself."""
    return [g for g in grid if g < n] + [n]


def fit_walk(
    lm: LoadedModel,
    token_lists: list[list[int]],
    lay: Layout,
    rec: Recipe,
    *,
    seed: int = 0,
    batch_size: int = 8,
    progress: Callable[[FitProgress], None] | None = None,
    on_length: Callable[[int, list[FitResult]], None] | None = None,
    init_ids: list[int] | None = None,
) -> list[FitResult]:
    """Fit every text through its prefixes (per-text vectors only); results come back in input order, each the
    whole text's fit with `steps_run` and `seconds` counting its whole walk. Texts of the same prefix length are
    batched together. Every length, the whole text's included, first runs as the measured walks ran: at most
    PREFIX_CAP evaluations (the recipe's max_steps if smaller), the recipe's redraw rules judged against that
    cap. An intermediate prefix that is not reconstructed still hands on its best solution: it is a better
    start than a random draw. A whole text left unsolved then goes on from its best with the rest of the
    recipe's max_steps, refining it and never redrawing it (why not one fit with the whole budget: a larger
    budget lets fast-lbfgs-keep redraw a stalled warm start, and a cold draw at 128 tokens is hopeless).
    on_length(length, results) is called after each length with that length's first fits, for a caller's
    progress line. init_ids: each text's init stream (default: its index), as fit's."""
    ids = list(range(len(token_lists))) if init_ids is None else init_ids
    spent = [0] * len(token_lists)
    seconds = [0.0] * len(token_lists)
    warm: list[tuple | None] = [None] * len(token_lists)
    final: list[FitResult | None] = [None] * len(token_lists)
    plan = [walk_lengths(len(t)) for t in token_lists]
    first = replace(rec, max_steps=min(rec.max_steps, PREFIX_CAP))
    for length in sorted({n for lengths in plan for n in lengths}):
        idx = [i for i, lengths in enumerate(plan) if length in lengths]

        def run(group: list[int], recipe: Recipe, length: int = length) -> list[FitResult]:
            res = fit_resolved(
                lm,
                [token_lists[i][:length] for i in group],
                lay,
                recipe,
                seed=seed,
                batch_size=batch_size,
                progress=_walk_progress(progress, final, length),
                warm_start=[warm[i] for i in group],
                init_ids=[ids[i] for i in group],
            )
            for i, r in zip(group, res):
                spent[i] += r.steps_run
                seconds[i] += r.seconds
                warm[i] = (r.e, r.m)
            return res

        results = run(idx, first)
        best = dict(zip(idx, results))
        more = [i for i, r in best.items() if length == len(token_lists[i]) and not r.solved]
        left = {i: rec.max_steps - best[i].steps_run for i in more}  # the whole text's own budget: max_steps
        for cap in sorted({c for c in left.values() if c > 0}):
            group = [i for i in more if left[i] == cap]
            # refine, never redraw: a cold draw of a long text with this budget left is hopeless (a 128-token
            # text fell from 0.977 to 0.05 when the rest of the budget redrew it)
            refine = replace(rec, max_steps=cap, warm_redraw_evals=cap + 1)
            for i, r in zip(group, run(group, refine)):
                if (r.accuracy, -r.loss) > (best[i].accuracy, -best[i].loss):
                    best[i] = r
        for i, r in best.items():
            if length == len(token_lists[i]):
                final[i] = replace(r, index=i, steps_run=spent[i], seconds=seconds[i])
        if on_length is not None:
            on_length(length, results)
    return [r for r in final if r is not None]


def _walk_progress(
    progress: Callable[[FitProgress], None] | None, final: list[FitResult | None], length: int
) -> Callable[[FitProgress], None] | None:
    """The fitter's progress of one prefix length, restated for the whole walk: texts done and solved are whole
    texts (not prefixes), and the prefix being fitted is named, so a long walk does not read as finished each
    time a prefix is."""
    if progress is None:
        return None

    def report(p: FitProgress) -> None:
        ended = [f for f in final if f is not None]
        progress(replace(p, done=len(ended), total=len(final), solved=sum(f.solved for f in ended), prefix=length))

    return report
