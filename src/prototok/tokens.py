"""Text -> token ids, with the checks that make a text encodable at all, and the tokenizer's own conventions
(whether it puts a BOS in front of a text) that the experiments and the baseline share."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from .errors import PrototokError

if TYPE_CHECKING:
    from .models import LoadedModel


def tokenize(tokenizer, text: str, max_tokens: int | None = None) -> list[int]:
    """No special tokens: the proto-tokens take the place of BOS, as in the paper."""
    if not text or not text.strip():
        raise PrototokError("empty text: nothing to encode")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if max_tokens is not None and len(ids) > max_tokens:
        raise PrototokError(f"text has {len(ids)} tokens, longer than the model's context allows ({max_tokens})")
    return list(ids)


def added_bos(lm: LoadedModel) -> int | None:
    """The BOS id the tokenizer puts in front of a text by default, or None: hidden_capacity tokenizes with the
    tokenizer's defaults (train.py: `tokenizer(suffix_text, ...)`), so Llama-3 gets a BOS and Pythia, SmolLM2
    (which name a BOS token but do not add it) do not. The same rule decides H_LM's first token."""
    bos = getattr(lm.tokenizer, "bos_token_id", None)
    if bos is None:
        return None
    ids = lm.tokenizer("a")["input_ids"]
    return bos if ids and ids[0] == bos else None


def detokenize(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
