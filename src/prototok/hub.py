"""The Hugging Face Hub for prototok artefacts: proto-token files and encoder checkpoints, pushed to and pulled
from a model repository, and named on the command line as hf://USER/REPO[/PATH][@REVISION].

Pulled files go through huggingface_hub's cache and are then read exactly as local files are: checksums,
metadata types, and the model and tokenizer fingerprints (a file made for another model is refused).
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import PrototokError, first_line

SCHEME = "hf://"
_REPO = re.compile(r"[\w.-]+/[\w.-]+")


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    """hf://USER/REPO[/PATH][@REVISION] -> (repo id, path in the repo or None, revision or None)."""
    body = ref[len(SCHEME) :] if ref.startswith(SCHEME) else ref
    body, _, revision = body.partition("@")
    parts = body.strip("/").split("/")
    if len(parts) < 2 or not _REPO.fullmatch("/".join(parts[:2])):
        raise PrototokError(f"'{ref}' is not a Hub reference: use hf://USER/REPO[/FILE][@REVISION]")
    return "/".join(parts[:2]), "/".join(parts[2:]) or None, revision or None


def download(repo_id: str, filename: str, revision: str | None = None, token: str | None = None) -> Path:
    """One file of a model repository, through the local Hub cache; a one-line error when it cannot be had."""
    import huggingface_hub

    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, filename, revision=revision, token=token))
    except Exception as err:  # offline, no such repo or file, no access: huggingface_hub raises many types
        at = f"@{revision}" if revision else ""
        raise PrototokError(f"cannot fetch {filename} from Hub repo {repo_id}{at}: {first_line(err)}") from None


def upload(
    files: dict[str, Path],
    repo_id: str,
    *,
    message: str,
    private: bool | None = None,
    revision: str | None = None,
    token: str | None = None,
) -> str:
    """Files (path in repo -> local path) in one commit to a model repository, created if missing; returns its
    URL (or the commit's, where the Hub gives one)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in files.items()]
        info = api.create_commit(repo_id, ops, commit_message=message, revision=revision, repo_type="model")
    except Exception as err:  # not logged in, no write access, offline
        raise PrototokError(f"cannot push to Hub repo {repo_id}: {first_line(err)}") from None
    return str(getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}")
