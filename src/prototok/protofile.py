"""Proto-token files: safetensors with e and m, and JSON metadata that ties them to a model and tokenizer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import PrototokError
from .files import atomic_write
from .models import check_made_for
from .tokens import text_sha256 as sha256_of_text
from .version import __version__

FORMAT_VERSION = 1


@dataclass
class ProtoTokens:
    """Proto-tokens for one or more texts: e (T, d); m (T, d), or (1, d) when shared by all T texts.

    The layout names the method that made the file (prototok.methods.for_layout) and that method checks the
    tensors' shapes when it decodes them: the cramming baseline's layout "mem" holds e (T, K, d), K [mem]
    vectors per text, with extra["num_mem"] == K and m empty (1, 0).
    """

    e: torch.Tensor
    m: torch.Tensor
    layout: str
    lengths: list[int]  # N per text
    model: str
    model_fingerprint: str
    tokenizer_fingerprint: str
    accuracy: list[float]
    steps: list[int]
    text_sha256: list[str]
    texts: list[str] | None = None  # only with --store-text
    recipe: str = ""
    seed: int = 0
    extra: dict = field(default_factory=dict)

    @classmethod
    def for_model(
        cls, lm, texts: list[str], *, store_text: bool = False, text_sha256: list[str] | None = None, **fields
    ) -> ProtoTokens:
        """Ties new vectors to what they were made for: the model's name and fingerprints, and the texts' sha256
        (or the given hashes: experiments identify a text by its token ids)."""
        return cls(
            model=lm.name,
            model_fingerprint=lm.fingerprint,
            tokenizer_fingerprint=lm.tokenizer_fingerprint,
            text_sha256=text_sha256 if text_sha256 is not None else [sha256_of_text(t) for t in texts],
            texts=list(texts) if store_text else None,
            **fields,
        )

    def __len__(self) -> int:
        return len(self.lengths)

    def _meta(self) -> dict:
        meta = {k: v for k, v in asdict(self).items() if k not in ("e", "m")}
        meta["format_version"] = FORMAT_VERSION
        meta["prototok_version"] = __version__
        return meta

    def save(self, path: str | Path) -> Path:
        """Atomic (files.atomic_write): a kill never leaves a half-written file at `path`."""
        path = Path(path)
        e, m = self.e.detach().float().cpu().contiguous(), self.m.detach().float().cpu().contiguous()
        meta = self._meta()
        meta["tensor_sha256"] = _tensor_digest(e, m)
        atomic_write(
            path, lambda tmp: save_file({"e": e, "m": m}, tmp, metadata={"prototok": json.dumps(meta, sort_keys=True)})
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProtoTokens:
        path = Path(path)
        try:
            tensors = load_file(path)

            with safe_open(path, "pt") as f:
                raw = (f.metadata() or {}).get("prototok")
        except FileNotFoundError:
            raise PrototokError(f"no such file: {path}") from None
        except (SafetensorError, OSError, ValueError) as err:
            raise PrototokError(f"{path} is not a readable proto-token file ({err})") from None
        if raw is None or set(tensors) != {"e", "m"}:
            raise PrototokError(f"{path} is a safetensors file but not a prototok proto-token file")
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError:
            raise PrototokError(f"{path} has corrupt prototok metadata") from None
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise PrototokError(
                f"{path} has format version {meta['format_version']}; this prototok reads {FORMAT_VERSION}"
            )
        e, m = tensors["e"], tensors["m"]
        if meta.get("tensor_sha256") != _tensor_digest(e, m):
            raise PrototokError(f"{path} was modified after it was written (tensor checksum mismatch)")
        known = {f for f in cls.__dataclass_fields__} - {"e", "m"}
        unknown = set(meta) - known - {"format_version", "prototok_version", "tensor_sha256"}
        if unknown:
            import warnings

            warnings.warn(f"{path}: ignoring unknown metadata keys {sorted(unknown)}", stacklevel=2)
        try:
            pt = cls(e=e, m=m, **{k: meta[k] for k in known if k in meta})
        except TypeError as err:
            raise PrototokError(f"{path} has incomplete metadata ({err})") from None
        if e.shape[0] != len(pt.lengths) or m.shape[0] not in (1, len(pt.lengths)):
            raise PrototokError(
                f"{path}: tensor shapes {tuple(e.shape)}, {tuple(m.shape)} do not match {len(pt.lengths)} texts"
            )
        return pt

    def check_model(self, lm) -> None:
        """Refuse to decode with another model or tokenizer: the vectors mean nothing there."""
        check_made_for(
            lm, "these proto-tokens were made", self.model, self.model_fingerprint, self.tokenizer_fingerprint
        )


def _tensor_digest(e: torch.Tensor, m: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in (e, m):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.float().contiguous().numpy().tobytes())
    return h.hexdigest()
