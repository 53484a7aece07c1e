"""prototok: a frozen causal LM writes a whole text in one forward pass from two trained vectors.

Data flow, one module each: tokens (text -> ids) -> layouts ([e, m, ..., m]) -> fit (optimise e, m)
-> protofile (save/load) -> onepass + decode (one forward, argmax, text).
"""

__version__ = "0.1.0"

from .decode import Decoded, decode  # noqa: E402
from .encode import encode  # noqa: E402
from .errors import PrototokError  # noqa: E402
from .fit import FitResult, fit  # noqa: E402
from .layouts import LAYOUTS  # noqa: E402
from .models import load_model  # noqa: E402
from .protofile import ProtoTokens  # noqa: E402
from .recipes import RECIPES, Recipe  # noqa: E402

__all__ = [
    "Decoded",
    "FitResult",
    "LAYOUTS",
    "PrototokError",
    "ProtoTokens",
    "RECIPES",
    "Recipe",
    "decode",
    "encode",
    "fit",
    "load_model",
]
