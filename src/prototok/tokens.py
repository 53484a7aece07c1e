"""Text -> token ids, with the checks that make a text encodable at all."""

from __future__ import annotations

import hashlib

from .errors import PrototokError


def tokenize(tokenizer, text: str, max_tokens: int | None = None) -> list[int]:
    """No special tokens: the proto-tokens take the place of BOS, as in the paper."""
    if not text or not text.strip():
        raise PrototokError("empty text: nothing to encode")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if max_tokens is not None and len(ids) > max_tokens:
        raise PrototokError(f"text has {len(ids)} tokens, longer than the model's context allows ({max_tokens})")
    return list(ids)


def detokenize(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
