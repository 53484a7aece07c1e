"""The command line on the tiny model: exit codes, outputs, and no partial files on bad input."""

import json

import click
import pytest
from click.testing import CliRunner

from prototok.cli import main


@pytest.fixture()
def run(tiny_dir):
    def invoke(*args, input=None):
        return CliRunner().invoke(main, [str(a) for a in args], input=input)

    return invoke


def enc(run, tiny_dir, out, *extra, input=None):
    return run(
        "encode",
        *extra,
        "--model",
        tiny_dir,
        "--recipe",
        "paper",
        "--lr",
        "0.1",
        "--steps",
        "300",
        "-o",
        out,
        input=input,
    )


def test_encode_decode_round_trip(run, tiny_dir, tmp_path):
    out = tmp_path / "p.safetensors"
    r = enc(run, tiny_dir, out, "the cat sat on the mat")
    assert r.exit_code == 0, r.output
    assert "accuracy 1.0000" in r.output and out.exists()
    d = run("decode", out)
    assert d.exit_code == 0 and d.stdout.strip() == "the cat sat on the mat"
    assert "decoded with model" in d.stderr  # decode without --model says which model it loaded
    j = run("decode", out, "--json", "--reference", "the cat sat on the mat")
    assert j.exit_code == 0 and json.loads(j.stdout)["texts"][0]["accuracy"] == 1.0


def test_encode_from_file_and_stdin(run, tiny_dir, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("bird sang")
    r = enc(run, tiny_dir, tmp_path / "a.safetensors", "--file", f, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["texts"][0]["accuracy"] == 1.0
    r = enc(run, tiny_dir, tmp_path / "b.safetensors", input="stars shone")
    assert r.exit_code == 0
    assert run("decode", tmp_path / "b.safetensors").stdout.strip() == "stars shone"


def test_not_reconstructed_exits_1_and_still_writes(run, tiny_dir, tmp_path):
    out = tmp_path / "p.safetensors"
    r = run("encode", "the river flowed past old mill", "--model", tiny_dir, "--steps", "0", "-o", out, "--json")
    assert r.exit_code == 1
    assert out.exists() and json.loads(r.stdout)["texts"][0]["accuracy"] < 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["   "], "empty text"),
        (["the " * 60], "longer than the model's context"),
        (["the cat", "--layout", "m e"], "unknown layout"),
        (["the cat", "--init-scale", "1e38", "--steps", "3"], "NaN"),  # finite, but the loss overflows
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_file(run, tiny_dir, tmp_path, args, message):
    out = tmp_path / "p.safetensors"
    r = run("encode", *args, "--model", tiny_dir, "-o", out)
    assert r.exit_code == 2
    assert message in r.output and len(r.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_exits_2(run, tmp_path):
    r = run("encode", "hello", "--model", "no-such-model", "-o", tmp_path / "p.safetensors")
    assert r.exit_code == 2 and "unknown model 'no-such-model'" in r.output


def test_decode_of_corrupt_file_exits_2(run, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    r = run("decode", bad)
    assert r.exit_code == 2 and "not a readable proto-token file" in r.output


def test_decode_with_another_model_exits_2(run, tiny_dir, tmp_path):
    from .conftest import tiny_model, tiny_tokenizer

    out = tmp_path / "p.safetensors"
    assert enc(run, tiny_dir, out, "bird sang").exit_code == 0
    other = tmp_path / "other"
    tiny_model(seed=1).save_pretrained(other)
    tiny_tokenizer().save_pretrained(other)
    r = run("decode", out, "--model", other)
    assert r.exit_code == 2 and "made for model" in r.output


@pytest.mark.parametrize("cmd", [[], ["encode"], ["decode"]])
def test_help(run, cmd):
    r = run(*cmd, "--help")
    assert r.exit_code == 0 and "Usage" in r.output


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


@pytest.mark.parametrize("path, cmd", list(_commands(main)), ids=lambda x: " ".join(x) if isinstance(x, tuple) else "")
def test_every_option_of_every_command_is_documented_in_its_help(path, cmd):
    """--help lists every option with a help text of its own, and the command's summary line is not cut short."""
    r = CliRunner().invoke(main, [*path, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    for p in cmd.params:
        if isinstance(p, click.Option) and p.name != "help":
            assert p.help and p.help.strip(), f"{' '.join(path)} {p.opts[-1]} has no help text"
            assert max(p.opts, key=len) in r.output and p.help.split()[0] in r.output
    short = cmd.get_short_help_str(limit=200)
    assert len(short) > 12 and not short.endswith("..."), f"{' '.join(path)}: summary {short!r}"


def test_quiet_verbose_and_the_logger_lines(run, tiny_dir, tmp_path):
    """The prototok logger on stderr as `prototok: ...`: info by default, -q warnings and errors only (and no
    progress), -v debug too; the logger is as it was after each command."""
    import logging

    from .test_protofile import _with_unknown_key

    log = logging.getLogger("prototok")
    before = (log.level, list(log.handlers))
    out = tmp_path / "p.safetensors"
    fit = ["encode", "the cat sat", "--model", tiny_dir, "--recipe", "paper:lr=0.1,max_steps=300", "-o", out]
    r = run(*fit)
    assert r.exit_code == 0 and "prototok: encode: 1/1 texts" in r.stderr, r.stderr
    assert (log.level, log.handlers) == before
    r = run("-q", *fit)
    assert r.exit_code == 0 and r.stderr == "" and "wrote" in r.stdout, r.stderr
    r = run("--quiet", "decode", out)
    assert r.exit_code == 0 and r.stdout.strip() == "the cat sat" and r.stderr == ""
    r = run("-v", "decode", out)
    assert r.exit_code == 0 and "prototok: decoded with model" in r.stderr
    assert any(x.startswith("prototok: ") and "fingerprint" in x for x in r.stderr.splitlines()), r.stderr
    from prototok.protofile import ProtoTokens

    odd = _with_unknown_key(ProtoTokens.load(out), tmp_path / "odd.safetensors")
    r = run("-q", "decode", odd)  # a warning still shows, once the decode worked
    assert r.exit_code == 0 and r.stderr.splitlines() == [
        "prototok: warning: " + f"{odd}: ignoring unknown metadata keys ['from_the_future']"
    ], r.stderr
    r = run("-q", "-v", "decode", out)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert (log.level, log.handlers) == before
