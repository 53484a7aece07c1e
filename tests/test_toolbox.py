"""The researcher's toolbox: your own model, Hub artefacts, export, config files, progress lines, data."""

from __future__ import annotations

import json

import pytest
import torch

from .conftest import tiny_model, tiny_tokenizer

# ------------------------------------------------------------------------------------------- bring your own model


def test_wrap_model_in_bf16_encodes_and_decodes_and_leaves_the_users_module_alone():
    import prototok

    model = tiny_model().to(torch.bfloat16).train()  # the user's module: bf16, train mode, trainable
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lm = prototok.wrap_model(model, tiny_tokenizer(), name="my-tiny")
    assert lm.dtype == torch.bfloat16 and lm.autocast_dtype is None and lm.name == "my-tiny"
    proto = prototok.encode("the cat sat on the mat", lm, recipe="paper:lr=0.1,max_steps=300")
    assert proto.model == "my-tiny" and proto.accuracy[0] == 1.0
    (out,) = prototok.decode(proto, lm, references=["the cat sat on the mat"])
    assert out.text == "the cat sat on the mat" and out.accuracy == 1.0
    # the user's module is as it was: train mode, requires_grad on, bf16, no .grad, same weights
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # weights are shared, not copied
    assert lm.model.get_input_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_a_pair_is_accepted_where_a_name_is_and_dtype_enters_the_fingerprint():
    import prototok
    from prototok.models import wrap_model

    model, tok = tiny_model(), tiny_tokenizer()
    fp32 = wrap_model(model, tok)
    bf16 = wrap_model(model, tok, dtype="bfloat16")
    assert model.get_input_embeddings().weight.dtype == torch.float32  # the cast copy is prototok's
    assert fp32.fingerprint != bf16.fingerprint
    proto = prototok.encode("the dog ran", (model, tok), recipe="paper:lr=0.1,max_steps=200")
    with pytest.raises(prototok.PrototokError, match="made with float32 weights.*are bfloat16"):
        prototok.decode(proto, bf16)


def test_load_model_keeps_the_global_transformers_logging_level(tiny_dir):
    from transformers.utils import logging as hf_logging

    from prototok.models import load_model

    hf_logging.set_verbosity_info()
    try:
        load_model.cache_clear()
        lm = load_model(str(tiny_dir), "cpu", "bfloat16")
        assert hf_logging.get_verbosity() == hf_logging.INFO
        assert lm.dtype == torch.bfloat16
    finally:
        hf_logging.set_verbosity_warning()
        load_model.cache_clear()


# ------------------------------------------------------------------------------------------------ Hub artefacts


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """huggingface_hub's download and commit, on a folder: repo files live in hub/<user>/<repo>/<path>."""
    import shutil
    from pathlib import Path

    import huggingface_hub

    root = tmp_path / "hub"
    commits = []

    def create_repo(self, repo_id, **kw):
        (root / repo_id).mkdir(parents=True, exist_ok=True)

    def create_commit(self, repo_id, operations, *, commit_message, **kw):
        for op in operations:
            dest = root / repo_id / op.path_in_repo
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(op.path_or_fileobj, dest)
        commits.append((repo_id, commit_message, [op.path_in_repo for op in operations]))
        return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()

    def hf_hub_download(repo_id, filename, *, revision=None, token=None, **kw):
        path = root / repo_id / filename
        if not path.is_file():
            raise FileNotFoundError(f"404 {repo_id}/{filename}")
        return str(path)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", create_commit)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    return Path(root), commits


def test_proto_tokens_round_trip_through_a_mocked_hub_and_refuse_another_model(tiny, fake_hub, tmp_path):
    from click.testing import CliRunner

    import prototok
    from prototok.cli import main
    from prototok.models import prepare

    root, commits = fake_hub
    proto = prototok.encode("the cat sat", tiny, recipe="paper:lr=0.1,max_steps=200")
    url = proto.push_to_hub("me/protos")
    assert "me/protos" in url and commits[-1][2] == ["prototokens.safetensors"]
    back = prototok.ProtoTokens.from_pretrained("me/protos")
    assert torch.equal(back.e, proto.e.float().cpu()) and back.model_fingerprint == tiny.fingerprint
    assert prototok.decode(back, tiny)[0].text == "the cat sat"
    other = prepare("other", tiny_model(seed=1), tiny_tokenizer(), "cpu")
    with pytest.raises(prototok.PrototokError, match="made for model"):
        prototok.decode(back, other)
    # the CLI: push a file, decode hf://
    local = proto.save(tmp_path / "p.safetensors")
    r = CliRunner().invoke(main, ["push", str(local), "me/cli", "--filename", "x.safetensors"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["decode", "hf://me/cli/x.safetensors", "--model", tiny.name, "--device", "cpu"])
    assert r.exit_code == 0 and r.stdout.strip() == "the cat sat", r.output
    r = CliRunner().invoke(main, ["decode", "hf://me/missing", "--model", tiny.name])
    assert r.exit_code == 2 and "cannot fetch prototokens.safetensors" in r.output


def test_encoder_checkpoint_round_trip_through_a_mocked_hub(tiny, fake_hub, tmp_path):
    from prototok.encoder import EncoderConfig, ProtoEncoder, from_pretrained, push_encoder, save_encoder
    from prototok.encoder.train import TrainConfig

    root, commits = fake_hub
    enc = ProtoEncoder(TrainConfig(width=16, layers=1, heads=2).encoder_config(tiny))
    folder = save_encoder(enc, tmp_path / "enc")
    push_encoder(folder, "hf://me/enc")
    assert sorted(commits[-1][2]) == ["encoder.json", "encoder.safetensors"]
    back = from_pretrained("me/enc", tiny)
    assert isinstance(back.cfg, EncoderConfig)
    assert all(torch.equal(a, b) for a, b in zip(enc.state_dict().values(), back.state_dict().values()))


CLOSED_PORT = "http://127.0.0.1:9"  # loopback, nothing listening: a connection is refused at once


@pytest.fixture
def hub_unreachable(monkeypatch, tmp_path):
    """The Hub endpoint on a closed local port and an empty Hub cache, offline mode not set: what a machine
    without a network looks like to huggingface_hub (which would retry for about half a minute)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", CLOSED_PORT)
    monkeypatch.setattr(constants, "ENDPOINT", CLOSED_PORT)
    template = CLOSED_PORT + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)


def test_hub_artefacts_offline_are_refused_at_once_in_one_line(hub_unreachable, tiny, tiny_dir, tmp_path):
    import time

    from prototok import hub
    from prototok.errors import PrototokError
    from prototok.protofile import ProtoTokens

    t0 = time.perf_counter()
    assert hub.is_offline()
    r = _cli("decode", "hf://me/my-protos", "--model", tiny_dir)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "not reachable" in r.output and "prototokens.safetensors" in r.output
    with pytest.raises(PrototokError, match="not reachable"):
        ProtoTokens.from_pretrained("me/x")
    r = _cli("encode", "the cat", "--model", tiny_dir, "--encoder", "hf://me/enc", "-o", tmp_path / "p.safetensors")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "not reachable" in r.output, r.output
    r = _cli("encode", "the cat", "--model", "nobody/no-such-model", "-o", tmp_path / "p.safetensors")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "not reachable" in r.output, r.output
    assert time.perf_counter() - t0 < 8  # huggingface_hub alone: five retries, 23 s each


def test_hub_artefacts_offline_come_from_the_local_cache(hub_unreachable, tiny, tmp_path, monkeypatch):
    import huggingface_hub

    import prototok

    path = prototok.encode("the cat sat", tiny, recipe="paper:lr=0.1,max_steps=200").save(tmp_path / "p.safetensors")
    calls = []

    def hf_hub_download(repo_id, filename, **kw):
        calls.append(kw.get("local_files_only"))
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    assert prototok.ProtoTokens.from_pretrained("me/protos").lengths == [3] and calls == [True]


def test_decode_of_a_hub_file_offline_is_one_line_within_seconds(tmp_path):
    """The command as a user runs it: a fresh process, the endpoint from HF_ENDPOINT."""
    import os
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
           and not k.lower().endswith("_proxy")}  # fmt: skip
    env |= {"HF_ENDPOINT": CLOSED_PORT, "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "prototok", "decode", "hf://me/my-protos"], env=env,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    took = time.perf_counter() - t0
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "not reachable" in r.stderr and took < 15, (took, r.stderr)


# ------------------------------------------------------------------------------- results out, config, progress


def _cli(*args, **kw):
    from click.testing import CliRunner

    from prototok.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], **kw)


@pytest.fixture(scope="module")
def run_db(tiny_dir, tmp_path_factory):
    """A capacity run on the tiny model, from a TOML config file, with --json and redirected stderr."""
    from .conftest import write_docs

    tmp = tmp_path_factory.mktemp("toolbox")
    docs = write_docs(tmp / "docs" if (tmp / "docs").mkdir() is None else None, seed=2)
    db = tmp / "r.db"
    cfg = tmp / "sweep.toml"
    cfg.write_text(
        f'model = "{tiny_dir}"\ndata = ["{docs}"]\nrecipe = "paper:lr=0.1"\nsteps = 5\nlengths = "4,8"\n'
        f'min-chars = 300\nsamples = 2\ndevice = "cpu"\nbatch_size = 1\ndb = "{tmp / "other.db"}"\n'
    )
    r = _cli("capacity", "--config", cfg, "--db", db, "--json")  # the flag overrides the file's db
    return r, db, tmp


def test_config_file_gives_options_and_flags_override_it(run_db):
    from prototok.store import Store

    r, db, tmp = run_db
    assert r.exit_code == 0, r.output
    assert db.exists() and not (tmp / "other.db").exists()
    with Store(db, readonly=True) as s:
        rows = s.rows()
    assert rows and {x["recipe"] for x in rows} == {"paper(lr=0.1,max_steps=5)"}
    assert {x["batch_size"] for x in rows} == {1}


def test_experiment_json_goes_alone_to_stdout(run_db):
    r, db, _ = run_db
    out = json.loads(r.stdout)
    assert out["experiment"] == "capacity" and out["db"] == str(db)
    assert out["config"]["lengths"] == [4, 8] and len(out["results"]) == 1
    assert "results in" in r.stderr  # the human-readable summary went to stderr


def test_redirected_stderr_gets_plain_progress_lines(run_db):
    r, _, _ = run_db
    lines = [x for x in r.stderr.splitlines() if x.startswith("prototok: capacity")]
    assert lines and all("texts" in x for x in lines), r.stderr
    assert "\r" not in r.stderr  # no bar redrawn in place


def test_redirected_progress_says_alive_every_10_s_by_default(monkeypatch):
    import io

    from prototok import progress

    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    monkeypatch.delenv(progress.PROGRESS_SECONDS_ENV, raising=False)
    out = io.StringIO()
    bar = progress.ProgressBar(4, "capacity wiki", stream=out)
    clock[0] += 9
    bar.update(0, chunk=False, step=30)
    assert out.getvalue() == ""
    clock[0] += 2  # 11 s without a finished text: one line says the run is alive
    bar.update(0, chunk=False, step=40)
    assert out.getvalue() == "prototok: capacity wiki: 0/4 texts, step 40, 11 s\n"
    monkeypatch.setenv(progress.PROGRESS_SECONDS_ENV, "30")  # the variable still sets it
    clock[0] += 20
    bar.update(0, chunk=False, step=50)
    assert out.getvalue().count("\n") == 1


def test_export_csv_has_a_header_and_a_line_per_row(run_db, tmp_path):
    import csv
    import sqlite3

    import pandas

    _, db, _ = run_db
    n = sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    r = _cli("export", "--db", db, "--table", "runs", "-o", tmp_path / "runs.csv")
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "runs.csv").read_text().splitlines()
    assert len(lines) == n + 1 and lines[0].startswith("id,experiment,model")
    assert [row["length"] for row in csv.DictReader(lines)][:1] == ["4"]
    r = _cli("export", "--db", db, "--format", "jsonl")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == n and json.loads(r.stdout.splitlines()[0])["id"]
    r = _cli("export", "--db", db, "--table", "geometry")
    assert r.exit_code == 0 and r.stdout.splitlines() == ["id,model,source,recipe,layout,length,kind,item,params,"
                                                          "model_fingerprint,value,created"]  # fmt: skip
    assert len(pandas.read_sql("SELECT * FROM runs", sqlite3.connect(db))) == n


def test_parquet_without_pyarrow_is_one_line(run_db, tmp_path, monkeypatch):
    import sys

    _, db, _ = run_db
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    r = _cli("export", "--db", db, "-o", tmp_path / "r.parquet")
    assert r.exit_code == 2 and "pyarrow" in r.output and len(r.output.strip().splitlines()) == 1


def test_bad_config_key_and_format_are_one_line(tmp_path, tiny_dir):
    (tmp_path / "c.json").write_text('{"no-such-option": 1}')
    r = _cli("encode", "x", "--config", tmp_path / "c.json")
    assert r.exit_code == 2 and "no-such-option" in r.output and len(r.output.strip().splitlines()) == 1
    (tmp_path / "c.ini").write_text("")
    r = _cli("encode", "x", "--config", tmp_path / "c.ini")
    assert r.exit_code == 2 and ".toml" in r.output


def test_encode_json_output_from_a_yaml_config(tmp_path, tiny_dir):
    pytest.importorskip("yaml")
    (tmp_path / "c.yaml").write_text(
        f"model: {tiny_dir}\ndevice: cpu\nrecipe: paper:lr=0.1,max_steps=200\njson: true\n"
    )
    r = _cli("encode", "the cat sat", "--config", tmp_path / "c.yaml", "-o", tmp_path / "p.safetensors")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["texts"][0]["accuracy"] == 1.0
    assert "prototok: encode: 1/1 texts" in r.stderr


# --------------------------------------------------------------------------------------------------------- data


def test_hf_source_with_config_split_field_and_streaming(monkeypatch):
    import sys
    import types

    from prototok.errors import PrototokError
    from prototok.sources import load_samples, with_text_field
    from prototok.sources.hf_datasets import parse_hub

    calls = []

    class Streamed:
        def __init__(self, rows):
            self.rows = rows

        def take(self, n):
            calls.append(("take", n))
            return self.rows[:n]

    class Table(dict):
        column_names = property(lambda self: list(self))

    def load_dataset(name, config=None, *, split, streaming=False):
        calls.append((name, config, split, streaming))  # config: None when the spec names none
        body = [f"Doc {i} opens here. " + "Then it goes on for a while. " * 20 for i in range(5)]
        if streaming:
            return Streamed([{"content": t, "id": i} for i, t in enumerate(body)])
        return Table(content=body, id=list(range(5)))

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    assert parse_hub("wikitext:wikitext-2-raw-v1") == ("wikitext", "wikitext-2-raw-v1", "train", "text", None)
    assert parse_hub("user/set:test") == ("user/set", None, "test", "text", None)
    assert parse_hub("w:c:train[:3]#body") == ("w", "c", "train", "body", 3)
    spec = with_text_field("hf:wikitext:wikitext-2-raw-v1:validation", "content")
    got = load_samples(spec, 2, min_chars=100)
    assert calls[-1] == ("wikitext", "wikitext-2-raw-v1", "validation", False)
    assert len(got) == 2 and got[0].source == "hf:wikitext:wikitext-2-raw-v1:validation#content"
    got = load_samples("hf:big/set:train[:3]#content", 2, min_chars=100)
    assert calls[-2:] == [("big/set", None, "train", True), ("take", 3)] and {s.doc for s in got} <= {"0", "1", "2"}
    with pytest.raises(PrototokError, match="no 'text' column.*--text-field"):
        load_samples("hf:x", 1, min_chars=100)


# --------------------------------------------------------------------------------------------- help, packaging


def test_help_lists_models_and_outputs_are_consistent():
    from prototok.models import BUILTIN_MODELS

    for cmd in (["encode"], ["capacity"], ["encoder", "train"]):
        text = _cli(*cmd, "--help", terminal_width=200).output
        assert all(name in text for name in BUILTIN_MODELS), cmd
    decode = _cli("decode", "--help", terminal_width=200).output
    assert "default: smollm2-135m" not in decode and "the model FILE was made for" in decode
    for cmd in (["encode"], ["demo"], ["report"], ["export"], ["encoder", "train"]):
        assert "-o, --output" in _cli(*cmd, "--help", terminal_width=200).output, cmd


def test_tensorboard_missing_is_one_line(monkeypatch, tmp_path, tiny_dir):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    r = _cli("encoder", "train", "--model", tiny_dir, "--data", "the cat", "--out", tmp_path / "e",
             "--report-to", "tensorboard")  # fmt: skip
    assert r.exit_code == 2 and "prototok[tensorboard]" in r.output and not (tmp_path / "e").exists()


def test_tensorboard_gets_the_logged_scalars(monkeypatch, tmp_path, tiny):
    import sys
    import types

    from prototok.encoder import TrainConfig, train_encoder

    logged = []

    class Writer:
        def __init__(self, log_dir, purge_step=None):
            logged.append(("dir", log_dir))

        def add_scalar(self, tag, value, step):
            logged.append((tag, step))

        def flush(self):
            pass

        def close(self):
            logged.append(("closed",))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    cfg = TrainConfig(min_len=2, max_len=4, steps=4, batch_size=2, log_every=2, width=16, layers=1, heads=2)
    train_encoder(cfg, ["the cat sat on the mat", "a dog ran to the park"], tmp_path / "e", lm=tiny,
                  report_to="tensorboard", progress=False)  # fmt: skip
    assert logged[0] == ("dir", str(tmp_path / "e" / "tensorboard")) and logged[-1] == ("closed",)
    assert ("train/loss", 2) in logged and ("train/accuracy", 4) in logged
