"""text -> tokens -> fitted proto-tokens: the `prototok encode` pipeline as a function."""

from __future__ import annotations

from collections.abc import Callable

from .fit import FitProgress
from .layouts import DEFAULT_LAYOUT, Layout, get_layout
from .methods import OnePass, to_proto
from .models import DEFAULT_MODEL, LoadedModel, as_loaded
from .protofile import ProtoTokens
from .recipes import Recipe, resolve_recipe
from .tokens import tokenize


def encode(
    texts: str | list[str],
    model: str | LoadedModel | tuple = DEFAULT_MODEL,
    *,
    layout: str | Layout = DEFAULT_LAYOUT,
    recipe: str | Recipe | None = None,
    seed: int = 0,
    share: str = "none",
    batch_size: int = 8,
    store_text: bool = False,
    device: str | None = None,
    progress: Callable[[FitProgress], None] | None = None,
    compile: bool = False,
) -> ProtoTokens:
    """Fit proto-tokens from which the frozen model writes each text in one forward pass. `model`: a name,
    a LoadedModel, or a (model, tokenizer) pair of your own (see wrap_model).

    The entry point by name: the model is loaded, the layout and the recipe (a spec; None: the default for
    `share`) resolved and checked for `share` here, once; encode_resolved does the rest."""
    lm = as_loaded(model, device)
    lay = get_layout(layout) if isinstance(layout, str) else layout
    rec = resolve_recipe(recipe, share)
    return encode_resolved(lm, texts, lay, rec, seed=seed, share=share, batch_size=batch_size,
                           store_text=store_text, progress=progress, compile=compile)  # fmt: skip


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
) -> ProtoTokens:
    """encode() below its entry point: a loaded model, a layout and a recipe already checked for `share`
    (recipes.resolve_recipe), as the command line resolves them before the model loads."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    extra = 1 if lay.first_target else 0  # e m^N needs one position more than the text has tokens
    token_lists = [tokenize(lm.tokenizer, t, lm.max_positions - extra) for t in texts]
    method = OnePass(rec)
    results = method.fit(
        lm,
        token_lists,
        layout=lay,
        seed=seed,
        share=share,
        batch_size=batch_size,
        progress=progress,
        compile=compile,
    )
    return to_proto(method, lm, results, layout=lay.name, share=share, seed=seed, texts=texts, store_text=store_text)
