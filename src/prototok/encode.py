"""text -> tokens -> fitted proto-tokens: the `prototok encode` pipeline as a function."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .errors import PrototokError
from .fit import FitProgress
from .layouts import DEFAULT_LAYOUT, Layout, get_layout
from .methods import OnePass, to_proto
from .models import DEFAULT_MODEL, LoadedModel, as_loaded
from .precision import load_dtype
from .progress import fit_progress
from .protofile import ProtoTokens
from .recipes import Recipe, resolve_recipe
from .tokens import tokenize
from .walk import WALK_ABOVE, fit_walk

log = logging.getLogger("prototok")


def encode(
    texts: str | list[str],
    model: str | LoadedModel | tuple = DEFAULT_MODEL,
    *,
    layout: str | Layout = DEFAULT_LAYOUT,
    recipe: str | Recipe | None = None,
    steps: int | None = None,
    lr: float | None = None,
    init_scale: float | None = None,
    seed: int = 0,
    share: str = "none",
    batch_size: int = 8,
    store_text: bool = False,
    device: str | None = None,
    progress: bool | Callable[[FitProgress], None] | None = False,
    compile: bool = False,
    walk: bool | None = None,
) -> ProtoTokens:
    """Fit proto-tokens from which the frozen model writes each text in one forward pass. `model`: a name,
    a LoadedModel, or a (model, tokenizer) pair of your own (see wrap_model).

    steps, lr, init_scale override the recipe's max_steps, lr and init_scale (None keeps its value), exactly as
    the command line's --steps, --lr, --init-scale do: the same settings give the same recipe key in the file.
    progress: True shows what `prototok encode` shows on stderr (a bar on a terminal, plain lines elsewhere),
    False (or None) nothing, a callable receives every fit.FitProgress.
    walk: fit each text through its own prefixes (prototok.walk); None (the default): texts longer than
    walk.WALK_ABOVE tokens walk, shorter ones are fitted cold as always; False: every text cold.

    The entry point by name: the model is loaded, the layout and the recipe (a spec; None: the default for
    `share`) resolved and checked for `share` here, once; encode_resolved does the rest."""
    lay = get_layout(layout) if isinstance(layout, str) else layout
    rec = resolve_recipe(recipe, share, lr=lr, max_steps=steps, init_scale=init_scale)
    lm = as_loaded(model, device, dtype=load_dtype(rec, None))  # an L-BFGS recipe loads fp32 weights
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not progress or callable(progress):
        return encode_resolved(lm, texts, lay, rec, seed=seed, share=share, batch_size=batch_size,
                               store_text=store_text, progress=progress or None, compile=compile,
                               walk=walk)  # fmt: skip
    update, bar = fit_progress(len(texts), "encode")
    try:
        return encode_resolved(lm, texts, lay, rec, seed=seed, share=share, batch_size=batch_size,
                               store_text=store_text, progress=update, compile=compile, walk=walk)  # fmt: skip
    finally:
        bar.close()


def encode_resolved(
    lm: LoadedModel,
    texts: str | list[str],
    lay: Layout,
    rec: Recipe,
    *,
    seed: int = 0,
    share: str = "none",
    batch_size: int = 8,
    store_text: bool = False,
    progress: Callable[[FitProgress], None] | None = None,
    compile: bool = False,
    walk: bool | None = None,
) -> ProtoTokens:
    """encode() below its entry point: a loaded model, a layout and a recipe already checked for `share`
    (recipes.resolve_recipe), as the command line resolves them before the model loads."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    log.debug("encode: %d text(s), layout %s, recipe %s, seed %d, share %s", len(texts), lay.name, rec.key, seed, share)
    extra = 1 if lay.first_target else 0  # e m^N needs one position more than the text has tokens
    token_lists = [tokenize(lm.tokenizer, t, lm.max_positions - extra) for t in texts]
    method = OnePass(rec)
    walking = [walk if walk is not None else share == "none" and len(t) > WALK_ABOVE for t in token_lists]
    if any(walking) and share != "none":
        raise PrototokError(
            "a prefix walk fits each text's own vectors: it cannot share one (--no-walk, or no --share)"
        )
    results: list = [None] * len(token_lists)
    cold = [i for i, w in enumerate(walking) if not w]
    if cold:
        fitted = method.fit(lm, [token_lists[i] for i in cold], layout=lay, seed=seed, share=share,
                            batch_size=batch_size, progress=progress, compile=compile,
                            init_ids=cold if len(cold) < len(token_lists) else None)  # fmt: skip
        for i, r in zip(cold, fitted):
            results[i] = r
    long = [i for i, w in enumerate(walking) if w]
    if long:
        walked = fit_walk(lm, [token_lists[i] for i in long], lay, rec, seed=seed, batch_size=batch_size,
                          progress=progress, init_ids=long)  # fmt: skip
        for i, r in zip(long, walked):
            results[i] = r
    extra = {"walked": walking} if any(walking) else None
    return to_proto(method, lm, results, layout=lay.name, share=share, seed=seed, texts=texts, store_text=store_text,
                    extra=extra)  # fmt: skip
