"""Proto-token files: safetensors with e and m, and JSON metadata that ties them to a model and tokenizer."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import PrototokError, first_line
from .files import atomic_write, check_output_dir, check_output_file
from .models import check_made_for
from .tokens import text_sha256 as sha256_of_text
from .version import __version__

# 2: the metadata checksum (CHECKSUM_KEY) is required. Version 1 files written before it was added (and files
# without a version key) still load, with a warning that their metadata cannot be verified.
FORMAT_VERSION = 2
CHECKSUM_REQUIRED_SINCE = 2
HUB_FILENAME = "prototokens.safetensors"  # the file's name in a save_pretrained folder or a Hub repository

log = logging.getLogger("prototok")


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
    # what the fit computed in (prototok.precision: "float32", "bfloat16", "float32+bfloat16-autocast", ...);
    # "" in files written before it was stored. A solution decodes exactly only in its own precision.
    precision: str = ""

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

    def __repr__(self) -> str:
        """What the file holds, on one line: the vectors' shapes but never their values (a dump of two (T, d)
        tensors says nothing at a prompt)."""
        parts = [f"model={self.model!r}", f"layout={self.layout!r}", f"texts={len(self)}",
                 f"lengths={_few(self.lengths)}", f"recipe={self.recipe!r}"]  # fmt: skip
        if self.accuracy:
            parts.append(f"accuracy={_few([round(a, 4) for a in self.accuracy])}")
        parts.append(f"e={tuple(self.e.shape)}, m={tuple(self.m.shape)}")
        return f"ProtoTokens({', '.join(parts)})"

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
        meta["tensor_sha256"] = digest = _tensor_digest(e, m)
        raw = json.dumps(meta, sort_keys=True)
        header = {"prototok": raw, CHECKSUM_KEY: _file_digest(raw, digest)}
        atomic_write(path, lambda tmp: save_file({"e": e, "m": m}, tmp, metadata=header))
        return path

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Save as transformers and PEFT save a model: into a folder (created if missing), under the fixed name
        prototokens.safetensors that from_pretrained and the Hub look for; returns the file's path."""
        folder = check_output_dir(save_directory, "save_pretrained folder")
        path = check_output_file(folder / HUB_FILENAME, "save_pretrained file", writable=False)
        folder.mkdir(parents=True, exist_ok=True)
        return self.save(path)

    @classmethod
    def from_pretrained(
        cls,
        repo_id: str | Path,
        filename: str | None = None,
        *,
        revision: str | None = None,
        token: str | None = None,
    ) -> ProtoTokens:
        """A proto-token file from a save_pretrained folder, a file path, or a Hugging Face Hub model repository
        (USER/REPO or hf://USER/REPO[/FILE][@REVISION]), as transformers resolves a name; checked exactly as
        load() checks a local file, and decoding still refuses another model. `filename`: another name than
        prototokens.safetensors inside the folder or repository."""
        from . import hub

        local = Path(repo_id)
        if local.is_dir():
            inside = local / (filename or HUB_FILENAME)
            if not inside.is_file():
                raise PrototokError(f"{local} is a folder without {inside.name} (the file save_pretrained writes)")
            return cls.load(inside)
        if local.exists():
            return cls.load(local)
        repo_id = str(repo_id)
        repo, inner, rev = hub.parse_ref(repo_id)
        return cls.load(hub.download(repo, filename or inner or HUB_FILENAME, revision or rev, token))

    def push_to_hub(
        self,
        repo_id: str,
        filename: str = "",
        *,
        private: bool | None = None,
        revision: str | None = None,
        token: str | None = None,
        commit_message: str | None = None,
    ) -> str:
        """Save to a temporary file and commit it to Hub repository `repo_id` (created if missing) as
        `filename` (default prototokens.safetensors); returns the commit's URL."""
        import tempfile

        from . import hub

        repo, inner, rev = hub.parse_ref(repo_id)
        name = filename or inner or HUB_FILENAME
        with tempfile.TemporaryDirectory() as tmp:
            local = self.save(Path(tmp) / Path(name).name)
            message = commit_message or f"prototok: {len(self)} text(s) for model {self.model} ({self.layout})"
            return hub.upload({name: local}, repo, message=message, private=private, revision=revision or rev,
                              token=token)  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> ProtoTokens:
        """Read and check a file: its checksum (metadata and tensors), the type of every metadata field, and the
        tensors' shapes against its texts. Anything else is a PrototokError naming the file.
        hf://USER/REPO[/FILE][@REVISION] reads it from the Hugging Face Hub (FILE: prototokens.safetensors)."""
        if isinstance(path, str) and path.startswith("hf://"):
            return cls.from_pretrained(path)
        path = Path(path)
        if path.exists() and not path.is_file():  # a folder; a FIFO would block the read forever
            raise PrototokError(f"{path} is not a regular file")
        try:
            tensors = load_file(path)

            with safe_open(path, "pt") as f:
                header = f.metadata() or {}
        except FileNotFoundError:
            raise PrototokError(f"no such file: {path}") from None
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise PrototokError(f"{path} is not a readable proto-token file ({first_line(err)})") from None
        raw = header.get("prototok")
        if raw is None or set(tensors) != {"e", "m"}:
            raise PrototokError(f"{path} is a safetensors file but not a prototok proto-token file")
        try:
            meta = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            raise PrototokError(f"{path} has corrupt prototok metadata") from None
        if not isinstance(meta, dict):
            raise PrototokError(f"{path} has corrupt prototok metadata (a JSON {type(meta).__name__}, not an object)")
        version = meta.get("format_version", 0)
        if not _is_int(version):
            raise PrototokError(f"{path} has corrupt prototok metadata (format_version {version!r})")
        if version > FORMAT_VERSION:
            raise PrototokError(f"{path} has format version {version}; this prototok reads {FORMAT_VERSION}")
        e, m = tensors["e"], tensors["m"]
        if not (e.is_floating_point() and m.is_floating_point()):
            raise PrototokError(f"{path} holds {e.dtype}/{m.dtype} tensors, not floating-point vectors")
        if e.ndim < 2 or m.ndim < 2:  # a row per text (or one shared m row), of vectors: at least (T, d)
            raise PrototokError(f"{path}: tensors e {tuple(e.shape)}, m {tuple(m.shape)} are not rows of vectors")
        if not (torch.isfinite(e).all() and torch.isfinite(m).all()):  # NaN/inf decode to garbage
            raise PrototokError(f"{path} holds NaN or infinite values in its vectors")
        digest = _tensor_digest(e, m)
        if meta.get("tensor_sha256") != digest:
            raise PrototokError(f"{path} was modified after it was written (tensor checksum mismatch)")
        # Files written since the checksum covers the metadata carry CHECKSUM_KEY beside the JSON, and their format
        # version says so: one without it was edited. Files written before (version 1 or no version key) have only
        # tensor_sha256 (inside the JSON): they still load, with a warning, their tensors checked as they always
        # were and their metadata checked by type and bounds below (lengths against the model at decode).
        stored = header.get(CHECKSUM_KEY)
        if stored is None and version >= CHECKSUM_REQUIRED_SINCE:
            raise PrototokError(f"{path} was modified after it was written (its metadata checksum was removed)")
        if stored is None:
            log.warning("%s: an older file without a metadata checksum; its metadata is not verified", path)
        elif stored != _file_digest(raw, digest):
            raise PrototokError(f"{path} was modified after it was written (metadata checksum mismatch)")
        known = {f for f in cls.__dataclass_fields__} - {"e", "m"}
        unknown = set(meta) - known - {"format_version", "prototok_version", "tensor_sha256"}
        if unknown:  # a newer prototok's file: it still loads
            log.warning("%s: ignoring unknown metadata keys %s", path, sorted(unknown))
        fields = {k: meta[k] for k in known if k in meta}
        missing = sorted(k for k in _REQUIRED if k not in fields)
        if missing:
            raise PrototokError(f"{path} has incomplete metadata (missing {', '.join(missing)})")
        for k, v in fields.items():
            if not _FIELD_TYPES[k](v):
                raise PrototokError(f"{path} has corrupt prototok metadata ({k} = {_short(v)})")
        pt = cls(e=e, m=m, **fields)
        n = len(pt.lengths)
        if n == 0 or min(pt.lengths) < 1:
            raise PrototokError(f"{path} has corrupt prototok metadata (lengths {_short(pt.lengths)})")
        for k in ("accuracy", "steps", "text_sha256", "texts"):
            v = getattr(pt, k)
            if v is not None and k in fields and len(v) != n:
                raise PrototokError(f"{path} has corrupt prototok metadata ({k} has {len(v)} entries for {n} texts)")
        if e.ndim < 2 or e.shape[0] != n or m.shape[0] not in (1, n):
            raise PrototokError(f"{path}: tensor shapes {tuple(e.shape)}, {tuple(m.shape)} do not match {n} texts")
        return pt

    def check_model(self, lm) -> None:
        """Refuse to decode with another model or tokenizer: the vectors mean nothing there."""
        check_made_for(
            lm,
            "these proto-tokens were made",
            self.model,
            self.model_fingerprint,
            self.tokenizer_fingerprint,
            self.precision.partition("+")[0],
        )
        d = lm.hidden_size
        if self.e.shape[-1] != d or (self.m.numel() and self.m.shape[-1] != d):
            raise PrototokError(
                f"these proto-tokens hold vectors of size {self.e.shape[-1]}; model '{lm.name}' takes {d}"
            )
        if max(self.lengths, default=0) > lm.max_positions:  # an edited file must not run 100000 positions
            raise PrototokError(
                f"these proto-tokens claim a text of {max(self.lengths)} tokens, more than the model's context "
                f"({lm.max_positions})"
            )


CHECKSUM_KEY = "prototok_sha256"  # safetensors header key: sha256 of the metadata JSON and the tensor digest


def _file_digest(raw_meta: str, tensor_digest: str) -> str:
    """Covers the metadata exactly as stored (the JSON string) and the tensors (through their digest)."""
    return hashlib.sha256(raw_meta.encode("utf-8") + b"\n" + tensor_digest.encode()).hexdigest()


def _few(values: list, most: int = 8) -> str:
    """A list as repr writes it, cut to its first `most` items and a count of the rest."""
    if len(values) <= most:
        return repr(list(values))
    return f"[{', '.join(map(repr, values[:most]))}, ... {len(values) - most} more]"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _list_of(test):
    return lambda v: isinstance(v, list) and all(test(x) for x in v)


def _is_str(v) -> bool:
    return isinstance(v, str)


# What each metadata field must be; a file whose fields have other types is refused before anything uses them.
_FIELD_TYPES = {
    "layout": _is_str,
    "lengths": _list_of(_is_int),
    "model": _is_str,
    "model_fingerprint": _is_str,
    "tokenizer_fingerprint": _is_str,
    "accuracy": _list_of(_is_num),
    "steps": _list_of(_is_int),
    "text_sha256": _list_of(_is_str),
    "texts": lambda v: v is None or _list_of(_is_str)(v),
    "recipe": _is_str,
    "seed": _is_int,
    "extra": lambda v: isinstance(v, dict),
    "precision": _is_str,
}
_REQUIRED = ("layout", "lengths", "model", "model_fingerprint", "tokenizer_fingerprint", "accuracy", "steps",
             "text_sha256")  # fmt: skip


def _tensor_digest(e: torch.Tensor, m: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in (e, m):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.float().contiguous().numpy().tobytes())
    return h.hexdigest()
