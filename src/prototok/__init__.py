"""prototok: a frozen causal LM writes a whole text in one forward pass from two trained vectors.

Data flow, one module each: tokens (text -> ids) -> layouts ([e, m, ..., m]) -> fit (optimise e, m)
-> protofile (save/load) -> onepass + decode (one forward, argmax, text).

Messages go to logging.getLogger("prototok") (the library configures no handler: warnings reach stderr through
logging's last resort, information only where the caller's logging setup asks for it).
"""

from .decode import Decoded, decode
from .encode import encode
from .errors import PrototokError
from .fit import FitProgress, FitResult, fit
from .layouts import LAYOUTS
from .models import DEFAULT_MODEL, LoadedModel, load_model, wrap_model
from .protofile import ProtoTokens
from .recipes import RECIPES, Recipe
from .version import __version__

__all__ = [
    "__version__",
    "DEFAULT_MODEL",
    "Decoded",
    "FitProgress",
    "FitResult",
    "LAYOUTS",
    "LoadedModel",
    "PrototokError",
    "ProtoTokens",
    "RECIPES",
    "Recipe",
    "decode",
    "encode",
    "fit",
    "load_model",
    "wrap_model",
]
