"""Encoder checkpoints: a folder of encoder.safetensors (weights) beside encoder.json (config, LM fingerprints,
and whatever the writer adds, e.g. the training step). An encoder writes vectors for one LM only, so loading
checks the model and tokenizer fingerprints before anything is computed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, fields
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import PrototokError
from ..files import atomic_write, atomic_write_text, read_text
from ..models import LoadedModel, check_made_for
from .model import EncoderConfig, ProtoEncoder

WEIGHTS, CONFIG = "encoder.safetensors", "encoder.json"
FORMAT_VERSION = 1
log = logging.getLogger("prototok")


def checkpoint_folder(path: str | Path) -> Path:
    """A checkpoint is named by its folder or by its encoder.safetensors: the folder either way. A Hub reference,
    hf://USER/REPO[/SUBFOLDER][@REVISION], is fetched (through the Hub cache) and its local folder returned."""
    if isinstance(path, str) and path.startswith("hf://"):
        return pull_encoder(path)
    path = Path(path)
    return path.parent if path.is_file() else path


def save_encoder(encoder: ProtoEncoder, folder: str | Path, extra: dict | None = None) -> Path:
    """Weights as safetensors, config (+ extra, e.g. the training step) as sorted-key JSON; each file atomic."""
    from .. import __version__

    folder = Path(folder)
    state = {k: v.detach().float().cpu().contiguous() for k, v in encoder.state_dict().items()}
    meta = {"config": asdict(encoder.cfg), "format_version": FORMAT_VERSION, "prototok_version": __version__}
    meta |= extra or {}
    atomic_write(folder / WEIGHTS, lambda tmp: save_file(state, tmp))
    atomic_write_text(folder / CONFIG, json.dumps(meta, sort_keys=True, indent=1) + "\n")
    return folder


def read_meta(path: str | Path) -> dict:
    """The checkpoint's encoder.json; refuses a format newer than this prototok reads."""
    folder = checkpoint_folder(path)
    if not (folder / CONFIG).is_file():
        raise PrototokError(f"{folder} is not an encoder checkpoint (no {CONFIG})")
    try:
        meta = json.loads(read_text(folder / CONFIG))
    except json.JSONDecodeError as err:
        raise PrototokError(f"{folder / CONFIG} is corrupt ({err})") from None
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise PrototokError(
            f"{folder} has encoder format {meta['format_version']}; this prototok reads {FORMAT_VERSION}"
        )
    return meta


def config_from_meta(meta: dict, where: str) -> EncoderConfig:
    """The EncoderConfig of a checkpoint's metadata; keys a newer prototok added are ignored with a warning."""
    raw = meta.get("config", {})
    known = {f.name for f in fields(EncoderConfig)}
    if unknown := sorted(set(raw) - known):
        log.warning("%s: ignoring unknown encoder config keys %s", where, unknown)
    try:
        return EncoderConfig(**{k: v for k, v in raw.items() if k in known})
    except TypeError as err:
        raise PrototokError(f"{where} has an incomplete encoder config ({err})") from None


def check_encoder_model(cfg: EncoderConfig, lm: LoadedModel, where: str) -> None:
    """An encoder writes vectors for one LM only: refuse any other model or tokenizer, naming both."""
    check_made_for(lm, f"encoder {where} was trained", cfg.lm_name, cfg.lm_fingerprint, cfg.tokenizer_fingerprint)


def load_encoder(path: str | Path, lm: LoadedModel) -> ProtoEncoder:
    """An encoder checkpoint folder (or its encoder.safetensors), checked against lm, on lm's device, in eval."""
    folder = checkpoint_folder(path)
    cfg = config_from_meta(read_meta(folder), str(folder))
    check_encoder_model(cfg, lm, str(folder))
    try:
        state = load_file(folder / WEIGHTS)
    except (FileNotFoundError, SafetensorError, OSError) as err:
        raise PrototokError(f"cannot read {folder / WEIGHTS}: {err}") from None
    enc = ProtoEncoder(cfg)
    try:
        enc.load_state_dict(state)
    except RuntimeError as err:
        raise PrototokError(f"{folder / WEIGHTS} does not match its {CONFIG}: {err}") from None
    return enc.to(lm.device).eval()


def pull_encoder(repo_id: str, *, revision: str | None = None, token: str | None = None) -> Path:
    """An encoder checkpoint from a Hugging Face Hub repository (hf://USER/REPO[/SUBFOLDER][@REVISION] or
    USER/REPO): its two files, fetched through the Hub cache; returns the local folder holding them."""
    from .. import hub

    repo, inner, rev = hub.parse_ref(repo_id)
    prefix = f"{inner.rstrip('/')}/" if inner else ""
    meta = hub.download(repo, prefix + CONFIG, revision or rev, token)
    hub.download(repo, prefix + WEIGHTS, revision or rev, token)
    return meta.parent


def from_pretrained(repo_id: str, lm: LoadedModel, *, revision: str | None = None, token: str | None = None):
    """load_encoder for a checkpoint on the Hub (or a local folder): checked against lm's fingerprints."""
    folder = Path(repo_id) if Path(repo_id).exists() else pull_encoder(repo_id, revision=revision, token=token)
    return load_encoder(folder, lm)


def push_encoder(
    path: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Commit a checkpoint's encoder.json and encoder.safetensors (not its training state) to Hub repository
    `repo_id` (hf://USER/REPO[/SUBFOLDER]; created if missing); returns the commit's URL."""
    from .. import hub

    folder = checkpoint_folder(path)
    meta = read_meta(folder)  # refuses what is not a checkpoint
    if not (folder / WEIGHTS).is_file():
        raise PrototokError(f"{folder} has no {WEIGHTS}")
    repo, inner, rev = hub.parse_ref(str(repo_id))
    prefix = f"{inner.rstrip('/')}/" if inner else ""
    lm_name = meta.get("config", {}).get("lm_name", "?")
    message = commit_message or f"prototok encoder for model {lm_name}"
    files = {prefix + CONFIG: folder / CONFIG, prefix + WEIGHTS: folder / WEIGHTS}
    return hub.upload(files, repo, message=message, private=private, revision=revision or rev, token=token)
