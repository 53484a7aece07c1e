"""The docs do not rot: every `prototok ...` command line shown in README.md and docs/ parses (commands and
options exist; values are not checked, and nothing runs), every relative link points at a file that exists, and
neither the docs nor the code speak of how the project was made (issue numbers, scratch paths and the like)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from prototok.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^```(\w*)\s*$")
INLINE = re.compile(r"`(prototok [^`]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SEPARATORS = re.compile(r"\s(?:&&|\|\||;|\|)\s")
# env assignments, nohup, a venv's bin/ before the command itself
PREFIX = re.compile(r"^(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+|nohup\s+|time\s+)*(?:\S*/)?(prototok\s.*)$")
WORDS = r"issue ?#?[0-9]+|\bsessions?\b|/tmp/[a-z0-9]|FINDINGS\.md|this task|\bgoal [0-9]"  # process words
PROCESS_WORDS = re.compile(WORDS, re.I)


def _shell_lines(text: str) -> list[str]:
    """Lines of shell code blocks (bash, sh, console, or no language), continuation lines joined."""
    out, lang, buf = [], None, ""
    for line in text.splitlines():
        fence = FENCE.match(line.strip())
        if fence:
            lang = None if lang is not None else fence.group(1)
            continue
        if lang in (None, "python", "py", "toml", "yaml", "json", "text"):
            continue
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        out.append(buf)
        buf = ""
    return out


def commands(text: str) -> list[str]:
    """Every `prototok ...` command in a markdown text: in shell blocks and in inline code."""
    found = []
    for line in _shell_lines(text):
        for part in SEPARATORS.split(line):
            m = PREFIX.match(part.strip())
            if m:
                found.append(m.group(1))
    found += [m.group(1) for m in INLINE.finditer(text)]
    return found


def _tokens(command: str) -> list[str]:
    """shlex words without comments; placeholder brackets around options (`[--refine STEPS]`) dropped."""
    return [w.strip("[]") for w in shlex.split(command, comments=True) if w.strip("[]")]


def check_command(command: str) -> None:
    """Raises click.UsageError (NoSuchOption, an unknown command) if the command line would not parse."""
    words = _tokens(command)[1:]  # drop "prototok"
    cmd: click.Command = main
    ctx = click.Context(main, info_name="prototok")
    while isinstance(cmd, click.Group):
        opts = [w for w in words if not w.startswith("-")]
        if not opts or words[0] in ("-h", "--help", "--version"):
            return
        i = words.index(opts[0])
        for w in words[:i]:
            if w.split("=")[0] not in {o for p in cmd.params for o in p.opts + p.secondary_opts} | {"-h", "--help"}:
                raise click.NoSuchOption(w, ctx=ctx)
        sub = cmd.get_command(ctx, opts[0])
        if sub is None:
            raise click.UsageError(f"no such command '{opts[0]}' in '{ctx.command_path}'", ctx=ctx)
        cmd, words = sub, words[i + 1 :]
        ctx = click.Context(cmd, info_name=opts[0], parent=ctx)
    cmd.make_parser(ctx).parse_args(words)


def _all_commands() -> list[tuple[str, str]]:
    return [(p.relative_to(ROOT).as_posix(), c) for p in DOCS for c in commands(p.read_text(encoding="utf-8"))]


def test_the_docs_show_commands():
    """The extraction finds the README's own commands (a parser that finds nothing would pass everything)."""
    found = [c for doc, c in _all_commands() if doc == "README.md"]
    assert any(c.startswith("prototok encode") for c in found)
    assert any(c.startswith("prototok capacity") for c in found)


@pytest.mark.parametrize("doc,command", _all_commands())
def test_every_documented_command_parses(doc, command):
    try:
        check_command(command)
    except click.UsageError as err:
        pytest.fail(f"{doc}: `{command}`: {err.format_message()}")


def test_the_checker_refuses_unknown_commands_and_options():
    check_command("prototok encode 'Some text.' -o p.safetensors --recipe fast-e50:e_scale=30")
    check_command("prototok ablate layouts --data wiki --lengths 1,2,4")
    with pytest.raises(click.NoSuchOption):
        check_command("prototok encode 'x' --no-such-option 3")
    with pytest.raises(click.UsageError):
        check_command("prototok no-such-command --db x.db")
    with pytest.raises(click.UsageError):
        check_command("prototok ablate no-such-ablation")
    block = "```bash\nOMP_NUM_THREADS=1 .venv/bin/prototok decode p.safetensors \\\n  --json  # c\n"
    block += "ls && prototok report\n```"
    assert [_tokens(c) for c in commands(block)] == [
        ["prototok", "decode", "p.safetensors", "--json"],
        ["prototok", "report"],
    ]


@pytest.mark.parametrize("doc", [p.relative_to(ROOT).as_posix() for p in DOCS])
def test_relative_links_point_at_files(doc):
    path = ROOT / doc
    missing = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        if not (path.parent / target.split("#")[0]).exists():
            missing.append(target)
    assert not missing, f"{doc} links to files that do not exist: {missing}"


def _tracked_text_files() -> list[Path]:
    skip = {".txt", ".csv", ".jsonl", ".json", ".png", ".safetensors", ".db", ".gguf"}
    roots = ["README.md", "CONTRIBUTING.md", "Makefile", "docs", "src", "bench", "studies", "tests", ".ci"]
    files = []
    for r in roots:
        p = ROOT / r
        for f in [p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else []:
            generated = any(x == "__pycache__" or x.endswith(".egg-info") for x in f.parts)
            if f.is_file() and f.suffix not in skip and not generated and f != Path(__file__):
                files.append(f)
    return files


def test_no_process_words():
    """The project speaks of itself alone."""
    hits = []
    for f in _tracked_text_files():
        for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if PROCESS_WORDS.search(line):
                hits.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits[:20])
