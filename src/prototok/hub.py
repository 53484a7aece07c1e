"""The Hugging Face Hub for prototok artefacts: proto-token files and encoder checkpoints, pushed to and pulled
from a model repository, and named on the command line as hf://USER/REPO[/PATH][@REVISION].

Pulled files go through huggingface_hub's cache and are then read exactly as local files are: checksums,
metadata types, and the model and tokenizer fingerprints (a file made for another model is refused).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from .errors import PrototokError, first_line

SCHEME = "hf://"
_REPO = re.compile(r"[\w.-]+/[\w.-]+")
CONNECT_SECONDS = 2.0  # how long the reachability check waits for a name lookup and a TCP connection
UNREACHABLE = "the Hugging Face Hub is not reachable (offline, or HF_HUB_OFFLINE)"

log = logging.getLogger("prototok")


def is_offline() -> bool:
    """True when the Hub cannot be asked: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), or no TCP connection to its
    endpoint (HF_ENDPOINT), or to the proxy that reaches it, within CONNECT_SECONDS. Asked before every fetch, of
    a model or an artefact: offline, huggingface_hub would retry for about half a minute before failing, where
    prototok loads from the local cache or refuses at once."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or any(
        os.environ.get(k, "").upper() in ("1", "ON", "YES", "TRUE") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    ):
        return True  # the constant is read at import; the variable may have been set since
    address = _first_hop(constants.ENDPOINT)
    if address is None:
        return True
    try:
        _connect(*address)
    except OSError as err:
        log.debug("the Hub at %s is not reachable through %s:%s: %s", constants.ENDPOINT, *address, first_line(err))
        return True
    return False


def _first_hop(endpoint: str) -> tuple[str, int] | None:
    """(host, port) a request to the endpoint connects to first: the endpoint itself, or its proxy."""
    from urllib.parse import urlparse
    from urllib.request import getproxies, proxy_bypass

    url = urlparse(endpoint)
    if not url.hostname:
        return None
    proxy = getproxies().get(url.scheme) or getproxies().get("all")
    if proxy and not proxy_bypass(url.hostname):
        via = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        if via.hostname:
            return via.hostname, via.port or (443 if via.scheme == "https" else 80)
    return url.hostname, url.port or (443 if url.scheme == "https" else 80)


def _connect(host: str, port: int) -> None:
    """A TCP connection, closed at once; the name lookup, which socket timeouts do not bound, runs in a thread."""
    import socket
    import threading

    found: list = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as err:
            found.append(err)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(CONNECT_SECONDS)
    if not found:
        raise TimeoutError(f"no answer for {host} within {CONNECT_SECONDS:g} s")
    if isinstance(found[0], OSError):
        raise found[0]
    family, kind, proto, _, address = found[0][0]
    with socket.socket(family, kind, proto) as sock:
        sock.settimeout(CONNECT_SECONDS)
        sock.connect(address)


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

    at = f"@{revision}" if revision else ""
    if is_offline():  # the local cache, or a refusal at once
        try:
            got = huggingface_hub.hf_hub_download(
                repo_id, filename, revision=revision, token=token, local_files_only=True
            )
        except Exception:  # not in the cache (huggingface_hub raises several types)
            raise PrototokError(
                f"cannot fetch {filename} from Hub repo {repo_id}{at}: {UNREACHABLE} and the file is not in the local "
                "cache"
            ) from None
        return Path(got)
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, filename, revision=revision, token=token))
    except Exception as err:  # no such repo or file, no access: huggingface_hub raises many types
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
