"""Optimisation recipes: the paper's, kept exactly as published, and ours, chosen by measurement."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from .errors import PrototokError

SCHEDULES = ("constant", "cosine")
INITS = ("normal", "embedding")
OPTIMIZERS = ("adamw", "lbfgs")


@dataclass(frozen=True)
class Recipe:
    """How e and m are initialised and optimised; one help line per field."""

    name: str = "paper"
    lr: float = 1e-2  # AdamW learning rate
    e_scale: float = 1.0  # e's init std and learning rate are this many times m's (e alone decides output 0)
    betas: tuple[float, float] = (0.9, 0.9)  # AdamW betas (the paper's, not torch's default 0.999)
    weight_decay: float = 0.01  # decoupled, as torch.optim.AdamW
    eps: float = 1e-8
    init: str = "normal"  # "normal": N(0, init_scale^2); "embedding": N(0, (init_scale * std of the table)^2)
    init_scale: float = 1.0
    max_steps: int = 5000  # per text; a text stops early at 100% token accuracy
    schedule: str = "constant"  # learning rate over a text's own steps
    min_lr_ratio: float = 0.1  # cosine floor, as a fraction of lr
    schedule_steps: int = 0  # cosine period in steps; 0 means max_steps
    restart_after: int = 0  # re-draw a text's vectors after this many steps without a new best; 0 = never
    # re-draw after this many steps in which the current draw's token accuracy did not rise; 0 = never. Unlike
    # restart_after it ignores the loss, which L-BFGS lowers at almost every step even on a hopeless draw.
    stall_after: int = 0
    # a warm-started text (a shorter prefix's solution, an encoder's output) that stall_after / restart_after
    # would redraw is redrawn at random only while at least this many evaluations per token are left in its
    # budget, what a cold fit may need; else it keeps refining its start, which a hopeless draw would throw
    # away. 0: always redraw, as a random draw is.
    warm_redraw_evals: int = 0
    # the same budget for every draw, warm or random: a draw that stalls late is kept and refined, since a fresh
    # one could not finish in what is left (docs/findings/long-texts.md: a 90-token random draw at 0.944 was
    # redrawn with under 600 evaluations left). 0: no budget rule for random draws.
    redraw_evals: int = 0
    optimizer: str = "adamw"  # "lbfgs": per-row L-BFGS with a backtracking line search (optimizers.RowLBFGS)
    lbfgs_after: int = 0  # with "lbfgs": AdamW (lr, betas, ...) for a text's first steps, L-BFGS after
    history: int = 50  # L-BFGS curvature pairs kept per text
    lbfgs_lr: float = 1.0  # L-BFGS trial step (1: the quasi-Newton step itself)
    # focal loss (1 - p)^gamma * CE per token (0: cross-entropy): right tokens stop pulling, the last wrong
    # ones get the gradient; the stored loss is then the focal loss
    focal_gamma: float = 0.0
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for f in fields(self):  # NaN passes every range check below, and inf most: a fit of NaNs, then stored
            value = getattr(self, f.name)
            numbers = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                raise ValueError(f"Recipe.{f.name} must be a finite number, got {value}")
        if self.lr <= 0:
            raise ValueError(f"Recipe.lr must be > 0, got {self.lr}")
        if self.max_steps < 0:
            raise ValueError(f"Recipe.max_steps must be >= 0, got {self.max_steps}")
        if self.e_scale <= 0:
            raise ValueError(f"Recipe.e_scale must be > 0, got {self.e_scale}")
        if self.init_scale <= 0:
            raise ValueError(f"Recipe.init_scale must be > 0, got {self.init_scale}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Recipe.schedule must be one of {SCHEDULES}, got '{self.schedule}'")
        if self.init not in INITS:
            raise ValueError(f"Recipe.init must be one of {INITS}, got '{self.init}'")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Recipe.optimizer must be one of {OPTIMIZERS}, got '{self.optimizer}'")
        budgets = (self.restart_after, self.stall_after, self.warm_redraw_evals, self.redraw_evals)
        if min(budgets) < 0:
            raise ValueError(f"Recipe: restart_after, stall_after, warm_redraw_evals, redraw_evals >= 0; got {budgets}")
        if self.lbfgs_after < 0 or self.history < 1 or self.lbfgs_lr <= 0:
            raise ValueError(
                f"Recipe: lbfgs_after >= 0, history >= 1, lbfgs_lr > 0; got {self.lbfgs_after}, {self.history}, "
                f"{self.lbfgs_lr}"
            )
        if self.focal_gamma < 0:
            raise ValueError(f"Recipe.focal_gamma must be >= 0, got {self.focal_gamma}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"Recipe.betas must lie in [0, 1), got {self.betas}")

    def redraw_affordable(self, left: int, tokens: int, warm: bool = False) -> bool:
        """Whether a stalled draw of `tokens` tokens may be redrawn with `left` evaluations to go: a fresh draw
        needs redraw_evals per token of them, a given (warm) start's redraw at least warm_redraw_evals."""
        return left >= max(self.redraw_evals, self.warm_redraw_evals if warm else 0) * tokens

    @property
    def key(self) -> str:
        """Name plus the fields that differ from the named recipe: 'paper' or 'paper(lr=0.05,max_steps=300)'.
        Stored rows are keyed by it, so a changed setting is a new measurement, never a duplicate."""
        base = RECIPES.get(self.name)
        diff = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if f.compare and f.name != "name" and (base is None or getattr(self, f.name) != getattr(base, f.name))
        ]
        return self.name + (f"({','.join(diff)})" if diff else "")


RECIPES: dict[str, Recipe] = {
    "paper": Recipe(notes="arXiv 2505.21189: AdamW lr 1e-2 betas (0.9, 0.9) wd 0.01, N(0,1) init, 5000 steps"),
    # Measured on SmolLM2-135M (docs/findings/recipes.md): the first output depends on e alone and sits in the
    # attention sink, where a unit-scale e cannot move it; a 20x larger e (init and step) escapes it.
    "fast": Recipe(name="fast", lr=0.05, e_scale=20.0, notes="paper's AdamW, lr 5e-2, e at 20x m's scale"),
    # docs/findings/recipes.md: against `fast` on the same wiki prefixes, 50x left fewer texts stuck at low accuracy
    # (solved 6/6 vs 5/6 at N=8, 6/6 vs 4/6 at N=16, 1/4 vs 0/4 at N=32 within 300/300/500 steps).
    "fast-e50": Recipe(name="fast-e50", lr=0.05, e_scale=50.0, notes="paper's AdamW, lr 5e-2, e at 50x m's scale"),
    # docs/findings/long-texts.md: on wiki prefixes (data seed 7, cap 600 evaluations, N=32) 50 AdamW steps then
    # per-text L-BFGS solved as many texts as fast-e50 in 0.29x the evaluations (2/4 vs 0/4 at N=64); one text
    # stayed stuck from its first draw under every optimiser until a redraw after 60 steps without a rise in
    # accuracy solved it (4/4). AdamW first: from a random start L-BFGS alone stalled (1/4 at N=32).
    "fast-lbfgs": Recipe(
        name="fast-lbfgs",
        lr=0.05,
        e_scale=50.0,
        optimizer="lbfgs",
        lbfgs_after=50,
        stall_after=60,
        notes="fast-e50's AdamW for 50 steps, then per-text L-BFGS; a draw whose accuracy stalls 60 steps is redrawn",
    ),
}
# docs/findings/long-texts.md: from the 90-token solutions of a warm walk (wiki, data seed 23), fast-lbfgs's
# redraws left 128 tokens at 0.984 / 0.906 after 1500 evaluations; keeping the warm start solved both (1109,
# 1128). A short warm start stuck in a bad basin still gets a cold draw while one can finish: cold fits took up
# to ~12 evaluations per token at 45-64 tokens. Everything else is fast-lbfgs's, so cold fits run exactly as its do.
RECIPES["fast-lbfgs-keep"] = replace(
    RECIPES["fast-lbfgs"],
    name="fast-lbfgs-keep",
    warm_redraw_evals=12,
    notes="fast-lbfgs, but a stalled warm start is redrawn only while 12 evaluations per token are left",
)
# docs/findings/long-texts.md: in the fast-lbfgs-keep capacity walks every failure at 64-90 tokens was a warm
# start at 0.93-0.98 redrawn while 12 evaluations per token were left, then its random draws redrawn too; from
# the same starts kept, all three solved (222-600 evaluations) and 3 other texts took fewer evaluations than the
# walk's. 24 per token keeps a warm start of 63+ tokens at cap 1500; no draw is redrawn once a fresh one could not
# finish. Not the default: its own walks (same page, the 128-token walks) solved 0 of 4 wiki texts at 128 where
# fast-lbfgs-keep's solved 3; the 90-token solutions it kept (|e| ~1030) extended to 128 worse than the ones
# keep's redraws found (~700).
RECIPES["fast-lbfgs-hold"] = replace(
    RECIPES["fast-lbfgs-keep"],
    name="fast-lbfgs-hold",
    warm_redraw_evals=24,
    redraw_evals=12,
    notes="fast-lbfgs-keep, but a warm start is redrawn only while 24 evaluations per token are left, any draw 12",
)
SHARES = ("none", "m", "e")  # per-text vectors, or one m (or e) shared by a group of texts
DEFAULT_RECIPE = "fast-lbfgs-keep"  # per-text fits
SHARED_RECIPE = "fast-e50"  # fits sharing e or m over texts: L-BFGS here works per text only


def check_shareable(recipe: Recipe, share: str) -> None:
    """Before any loading: `share` is one of SHARES, and a recipe whose optimiser works per text cannot fit a
    vector shared by texts."""
    if share not in SHARES:
        raise ValueError(f"share must be one of {SHARES}, got '{share}'")
    if share != "none" and recipe.optimizer != "adamw":
        raise PrototokError(
            f"recipe '{recipe.key}' fits per-text vectors only: its optimizer cannot share e or m "
            f"(use --recipe {SHARED_RECIPE})"
        )


def default_recipe(share: str = "none") -> str:
    """The recipe a fit gets when none is named: the fastest measured one that can fit this kind."""
    return DEFAULT_RECIPE if share == "none" else SHARED_RECIPE


RECIPE_HELP = (
    f"NAME ({', '.join(RECIPES)}) or NAME:FIELD=VALUE,... to change fields of it, e.g. fast-e50:e_scale=30,"
    "schedule=cosine (README, Recipes)"
    f"  [default: {DEFAULT_RECIPE}; {SHARED_RECIPE} where texts share a vector]"
)


def get_recipe(name: str, **overrides) -> Recipe:
    """A named recipe with some fields overridden (None means keep the recipe's value)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe '{name}'; choose one of: {', '.join(RECIPES)}")
    return replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})


def parse_recipe(spec: str, **overrides) -> Recipe:
    """'NAME' or 'NAME:field=value,field=value' (e.g. 'fast-e50:e_scale=30,schedule=cosine') -> a Recipe; then
    `overrides` (None keeps the value). The one parser behind --recipe, the benches and config files.

    Values are typed as the field is (betas as 'b1/b2'); an unknown name or field is a ValueError that lists
    the legal ones. The resolved recipe keeps the base name, so its key ('fast-e50(e_scale=30.0)') says what
    differs from the named recipe and stored rows never mix with the base recipe's.
    """
    name, _, body = spec.strip().partition(":")
    if name not in RECIPES:
        raise ValueError(f"unknown recipe '{name}'; choose one of: {', '.join(RECIPES)}")
    base, given = RECIPES[name], {}
    settable = {f.name: f for f in fields(Recipe) if f.compare and f.name != "name"}
    for item in filter(None, (x.strip() for x in body.split(","))):
        key, eq, value = item.partition("=")
        if key not in settable or not eq:
            raise ValueError(f"recipe field '{item}' is not FIELD=VALUE with FIELD one of: {', '.join(settable)}")
        current = getattr(base, key)
        try:
            if isinstance(current, tuple):
                given[key] = tuple(float(v) for v in value.split("/"))
            elif isinstance(current, bool):
                given[key] = value.lower() in ("1", "true", "yes")
            else:
                given[key] = type(current)(value)
        except ValueError:
            raise ValueError(f"recipe field {key}: cannot read '{value}' as {type(current).__name__}") from None
    return replace(base, **given, **{k: v for k, v in overrides.items() if v is not None})


def resolve_recipe(recipe: str | Recipe | None, share: str = "none", **overrides) -> Recipe:
    """The one step from what a caller names to the Recipe a fit runs, taken once by each entry point: a spec
    (parse_recipe; None: the default for `share`) or a Recipe, with `overrides` (None keeps the value), checked
    for `share` (check_shareable). Everything below an entry point takes the Recipe it returns."""
    if isinstance(recipe, Recipe):
        given = {k: v for k, v in overrides.items() if v is not None}
        rec = replace(recipe, **given) if given else recipe
    else:
        rec = parse_recipe(recipe or default_recipe(share), **overrides)
    check_shareable(rec, share)
    return rec
