"""text -> tokens -> fitted proto-tokens: the `prototok encode` pipeline as a function."""

from __future__ import annotations

from collections.abc import Callable

from .fit import FitProgress
from .layouts import DEFAULT_LAYOUT, get_layout
from .methods import OnePass, to_proto
from .models import DEFAULT_MODEL, LoadedModel, as_loaded
from .protofile import ProtoTokens
from .recipes import Recipe, default_recipe, parse_recipe
from .tokens import tokenize


def encode(
    texts: str | list[str],
    model: str | LoadedModel | tuple = DEFAULT_MODEL,
    *,
    layout: str = DEFAULT_LAYOUT,
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
    a LoadedModel, or a (model, tokenizer) pair of your own (see wrap_model)."""
    lm = as_loaded(model, device)
    texts = [texts] if isinstance(texts, str) else list(texts)
    lay = get_layout(layout)
    recipe = default_recipe(share) if recipe is None else recipe
    rec = parse_recipe(recipe) if isinstance(recipe, str) else recipe
    extra = 1 if lay.first_target else 0  # e m^N needs one position more than the text has tokens
    token_lists = [tokenize(lm.tokenizer, t, lm.max_positions - extra) for t in texts]
    method = OnePass(rec)
    results = method.fit(
        lm,
        token_lists,
        layout=lay.name,
        seed=seed,
        share=share,
        batch_size=batch_size,
        progress=progress,
        compile=compile,
    )
    return to_proto(method, lm, results, layout=lay.name, share=share, seed=seed, texts=texts, store_text=store_text)
