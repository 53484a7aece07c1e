"""Every bad input is exit 2 with exactly one line on stderr, and nothing is created or changed.

One parametrised table of hostile inputs (the README's list) and seeded random mutations of a valid proto-token
file (flipped bytes, truncations, edited metadata fields), fed to the CLI on the tiny model through click's
CliRunner (stderr apart from stdout: click >= 8.2), plus one subprocess for raw bytes on a real stdin. Every
case snapshots its folder (every entry's type, mode, size and content) before and after. A read-only filesystem
cannot be made with chmod when the tests run as root (root ignores permissions), so two stand-ins are used: a
path under /proc, where nobody (root included) can create a file, and a mocked tempfile.mkstemp raising EROFS.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from prototok.cli import main
from prototok.errors import PrototokError
from prototok.protofile import CHECKSUM_KEY, ProtoTokens

from .conftest import write_docs

TEXT = "the cat sat on the mat"


def snapshot(root: Path) -> dict:
    """Every entry under root (symlinks not followed): type, mode, and the bytes of regular files."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size, digest)
    return out


def invoke(args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def assert_bad_input(result, root: Path, before: dict, match: str | None = None) -> None:
    err = result.stderr
    lines = err.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, repr(result.exception))
    assert len(lines) == 1 and lines[0].startswith("prototok: error: "), err
    if match:
        assert match in lines[0], lines[0]
    assert snapshot(root) == before, "a file was created or changed"


# ------------------------------------------------------------------------------------------ a valid file


@pytest.fixture(scope="module")
def valid(tiny, tmp_path_factory) -> Path:
    from prototok import encode
    from prototok.recipes import get_recipe

    proto = encode([TEXT, "bird sang"], tiny, recipe=get_recipe("paper", lr=0.1, max_steps=300))
    return proto.save(tmp_path_factory.mktemp("valid") / "p.safetensors")


def read_parts(path: Path) -> tuple[dict, dict]:
    with safe_open(path, "pt") as f:
        meta = json.loads(f.metadata()["prototok"])
    return load_file(path), meta


def rewrite(path: Path, tensors: dict, meta, *, checksum: str = "recompute", like: Path | None = None) -> None:
    """Write tensors and (edited) metadata with checksum "recompute" (matching the edit, so it is the type and
    bound checks that must refuse it, not the checksum), "stale" (the one of the file `like`: an edit by hand)
    or "none" (as a file written before the checksum covered the metadata)."""
    from prototok.protofile import _file_digest, _tensor_digest  # the test forges files

    if checksum == "recompute" and isinstance(meta, dict) and {"e", "m"} <= set(tensors):
        meta["tensor_sha256"] = _tensor_digest(tensors["e"].float(), tensors["m"].float())
    raw = json.dumps(meta, sort_keys=True)
    header = {"prototok": raw}
    if checksum == "recompute":
        header[CHECKSUM_KEY] = _file_digest(raw, meta.get("tensor_sha256", "") if isinstance(meta, dict) else "")
    elif checksum == "stale":
        with safe_open(like, "pt") as f:
            header[CHECKSUM_KEY] = f.metadata()[CHECKSUM_KEY]
    save_file(tensors, path, metadata=header)


def edited(**changes):
    def edit(tensors, meta):
        meta.update(changes)
        return tensors, meta

    return edit


def _as_list(tensors, meta):
    return tensors, [meta]


def _wide(tensors, meta):
    return {"e": torch.zeros(2, 32), "m": torch.zeros(2, 32)}, meta


def _int_vectors(tensors, meta):
    return {k: v.to(torch.int32) for k, v in tensors.items()}, meta


METADATA_EDITS = {
    "format_version a string": edited(format_version="1"),
    "format_version null": edited(format_version=None),
    "lengths strings": edited(lengths=["6", "2"]),
    "lengths null": edited(lengths=None),
    "lengths zero": edited(lengths=[0, 2]),
    "lengths negative": edited(lengths=[-6, 2]),
    "lengths past the context": edited(lengths=[100000, 2]),
    "lengths one per text": edited(lengths=[6]),
    "lengths a bool": edited(lengths=[True, 2]),
    "layout null": edited(layout=None),
    "layout unknown": edited(layout="m e"),
    "model null": edited(model=None),
    "extra a list": edited(extra=[1]),
    "accuracy strings": edited(accuracy=["x", "y"]),
    "texts a string": edited(texts="the cat"),
    "metadata a JSON list": _as_list,
    "vectors of another hidden size": _wide,
    "integer vectors": _int_vectors,
    "fingerprint of another model": edited(model_fingerprint="0" * 32),
}


@pytest.mark.parametrize("name", sorted(METADATA_EDITS))
def test_decode_refuses_edited_metadata(valid, tiny_dir, tmp_path, name):
    tensors, meta = read_parts(valid)
    tensors, meta = METADATA_EDITS[name](tensors, meta)
    path = tmp_path / "p.safetensors"
    rewrite(path, tensors, meta)
    before = snapshot(tmp_path)
    assert_bad_input(invoke(["decode", path, "--model", tiny_dir]), tmp_path, before)


def test_decode_refuses_metadata_edited_without_its_checksum(valid, tiny_dir, tmp_path):
    tensors, meta = read_parts(valid)
    meta["lengths"] = [3, 2]  # plausible: only the checksum over the metadata can tell
    path = tmp_path / "p.safetensors"
    rewrite(path, tensors, meta, checksum="stale", like=valid)
    before = snapshot(tmp_path)
    assert_bad_input(invoke(["decode", path, "--model", tiny_dir]), tmp_path, before, "metadata checksum")


def test_old_file_without_the_metadata_checksum_still_decodes(valid, tiny_dir, tmp_path):
    """Files written before the checksum covered the metadata have only tensor_sha256: they still load."""
    tensors, meta = read_parts(valid)
    path = tmp_path / "old.safetensors"
    rewrite(path, tensors, meta, checksum="none")
    r = invoke(["decode", path, "--model", tiny_dir])
    assert r.exit_code == 0 and r.stdout.splitlines()[0] == TEXT


# --------------------------------------------------------------------------------- seeded random mutations


def _mutations(n: int, seed: int = 13):
    rng = random.Random(seed)
    kinds = ["flip", "truncate", "field"]
    fields = ["format_version", "lengths", "layout", "model", "extra", "accuracy", "steps", "text_sha256", "texts"]
    junk = [None, "", "x", -1, 0, 10**9, 1.5, True, [], [None], ["a"], {}, {"a": 1}, [10**6, 1], [[1]]]
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "flip":
            out.append((kind, [(rng.random(), rng.randrange(1, 256)) for _ in range(rng.randint(1, 4))]))
        elif kind == "truncate":
            out.append((kind, rng.random()))
        else:
            out.append((kind, (rng.choice(fields), rng.choice(junk), rng.choice(["recompute", "stale", "none"]))))
    return out


@pytest.mark.parametrize("kind, arg", _mutations(36), ids=lambda x: x if isinstance(x, str) else "")
def test_decode_of_a_mutated_file_is_refused(valid, tiny_dir, tmp_path, kind, arg):
    """A mutation is refused with exit 2 and one line, or (a flip that only changed JSON whitespace in the
    header, a field set to the value it had) decodes exactly the original texts."""
    data = valid.read_bytes()
    path = tmp_path / "p.safetensors"
    if kind == "flip":
        buf = bytearray(data)
        for where, xor in arg:
            buf[int(where * len(buf))] ^= xor
        path.write_bytes(bytes(buf))
    elif kind == "truncate":
        path.write_bytes(data[: int(arg * len(data))])
    else:
        field, value, checksum = arg
        tensors, meta = read_parts(valid)
        meta[field] = value
        rewrite(path, tensors, meta, checksum=checksum, like=valid)
    before = snapshot(tmp_path)
    r = invoke(["decode", path, "--model", tiny_dir])
    if r.exit_code == 0:
        assert r.stdout.splitlines() == [TEXT, "bird sang"] and snapshot(tmp_path) == before
    else:
        assert_bad_input(r, tmp_path, before)


# ------------------------------------------------------------------- the list, one case per line


def _dir(tmp: Path) -> Path:
    (tmp / "adir").mkdir()
    return tmp / "adir"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "fifo")
    return tmp / "fifo"


def _symlink(tmp: Path) -> Path:
    (tmp / "target.safetensors").write_bytes(b"not ours")
    (tmp / "link.safetensors").symlink_to(tmp / "target.safetensors")
    return tmp / "link.safetensors"


def _model_copy(tiny_dir: Path, tmp: Path, name: str) -> Path:
    dest = tmp / name
    dest.mkdir()
    for p in tiny_dir.iterdir():
        (dest / p.name).write_bytes(p.read_bytes())
    return dest


def _truncated(tiny_dir, tmp):
    d = _model_copy(tiny_dir, tmp, "trunc")
    (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:1000])
    return d


def _pickle(tiny_dir, tmp):
    """A pytorch_model.bin that weights_only refuses (a pickle calling os.system)."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    d = _model_copy(tiny_dir, tmp, "pkl")
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(pickle.dumps({"w": Evil()}))
    return d


def _model_type(tiny_dir, tmp):
    d = _model_copy(tiny_dir, tmp, "mt")
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(cfg | {"model_type": "no-such-type"}))
    return d


def _gguf(tiny_dir, tmp):
    (tmp / "bad.gguf").write_bytes(b"GGUF" + bytes(range(60)))
    return tmp / "bad.gguf"


def _foreign_db(tmp):
    db = sqlite3.connect(tmp / "foreign.db")
    db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    db.execute("INSERT INTO invoices (amount) VALUES (1.5)")
    db.commit()
    db.close()
    return tmp / "foreign.db"


def _protos_is_a_file(tmp):
    (tmp / "r.protos").write_text("mine")
    return tmp / "r.db"


# Each case: (arguments built from (tiny_dir, tmp, docs), optional stdin, text the line must hold). The tmp
# folder is snapshotted after its setup; every case must leave it as it was.
ENCODE = ["encode", TEXT, "--recipe", "paper", "--steps", "5"]
CASES = {
    "-o an existing folder": (lambda t, d, docs: [*ENCODE, "--model", t, "-o", _dir(d)], None, "is a folder"),
    "-o a FIFO": (lambda t, d, docs: [*ENCODE, "--model", t, "-o", _fifo(d)], None, "is a FIFO"),
    "-o a symlink": (lambda t, d, docs: [*ENCODE, "--model", t, "-o", _symlink(d)], None, "symbolic link"),
    "-o a device": (lambda t, d, docs: [*ENCODE, "--model", t, "-o", "/dev/null"], None, "is a device"),
    "-o under /proc (cannot be created, even by root)": (
        lambda t, d, docs: [*ENCODE, "--model", t, "-o", "/proc/prototok-test/p.safetensors"],
        None,
        "cannot write",
    ),
    "-o below a file": (
        lambda t, d, docs: [*ENCODE, "--model", t, "-o", _symlink(d).parent / "target.safetensors" / "p"],
        None,
        None,
    ),
    "demo -o an existing folder": (lambda t, d, docs: ["demo", "--model", t, "-o", _dir(d)], None, "is a folder"),
    "non-UTF-8 text argument": (
        lambda t, d, docs: ["encode", "caf\udce9", "--model", t, "-o", d / "p.safetensors"],
        None,
        "not valid UTF-8",
    ),
    "non-UTF-8 stdin": (lambda t, d, docs: ["encode", "--model", t, "-o", d / "p"], b"the \xff\xfe cat", "UTF-8"),
    "non-UTF-8 --reference": (
        lambda t, d, docs: ["decode", d.parent / "valid.safetensors", "--model", t, *("--reference", "\udcff") * 2],
        None,
        "UTF-8",
    ),
    "--model truncated model.safetensors": (
        lambda t, d, docs: [*ENCODE, "--model", _truncated(t, d), "-o", d / "p.safetensors"],
        None,
        "cannot load model",
    ),
    "--model pytorch_model.bin refused by weights_only": (
        lambda t, d, docs: [*ENCODE, "--model", _pickle(t, d), "-o", d / "p.safetensors"],
        None,
        "cannot load model",
    ),
    "--model with an unknown model_type": (
        lambda t, d, docs: [*ENCODE, "--model", _model_type(t, d), "-o", d / "p.safetensors"],
        None,
        "cannot load model",
    ),
    "--model a corrupt GGUF": (
        lambda t, d, docs: [*ENCODE, "--model", _gguf(t, d), "-o", d / "p.safetensors"],
        None,
        "GGUF",
    ),
    "--model unknown": (lambda t, d, docs: [*ENCODE, "--model", "no-such", "-o", d / "p"], None, "unknown model"),
    "--model a Hub id, offline": (
        lambda t, d, docs: [*ENCODE, "--model", "nobody/no-such-model", "-o", d / "p"],
        None,
        "not reachable",
    ),
    "--device cuda:99": (lambda t, d, docs: [*ENCODE, "--model", t, "--device", "cuda:99", "-o", d / "p"], None, None),
    "--device nonsense": (lambda t, d, docs: [*ENCODE, "--model", t, "--device", "gpu9", "-o", d / "p"], None, None),
    "--batch-size 0": (lambda t, d, docs: [*ENCODE, "--model", t, "--batch-size", "0", "-o", d / "p"], None, None),
    "--batch-size -1": (lambda t, d, docs: [*ENCODE, "--model", t, "--batch-size", "-1", "-o", d / "p"], None, None),
    "--steps -1": (lambda t, d, docs: [*ENCODE, "--model", t, "--steps", "-1", "-o", d / "p"], None, None),
    "an unknown option": (lambda t, d, docs: ["encode", "--bogus"], None, "No such option"),
    "an unknown command": (lambda t, d, docs: ["nosuch"], None, "No such command"),
    "an unknown option of the group": (lambda t, d, docs: ["--bogus", "encode"], None, "No such option"),
    "decode without FILE": (lambda t, d, docs: ["decode"], None, "Missing argument"),
    "decode a folder": (lambda t, d, docs: ["decode", _dir(d), "--model", t], None, "not a regular file"),
    "decode a FIFO (no blocking read)": (lambda t, d, docs: ["decode", _fifo(d), "--model", t], None, "regular"),
    "decode a missing file": (lambda t, d, docs: ["decode", d / "none.safetensors"], None, "no such file"),
    "capacity --data missing": (
        lambda t, d, docs: ["capacity", "--model", t, "--data", d / "nodata", "--db", d / "r.db"],
        None,
        "no such file",
    ),
    "capacity --data unknown source": (
        lambda t, d, docs: ["capacity", "--model", t, "--data", "nosuchsource", "--db", d / "r.db"],
        None,
        "unknown data source",
    ),
    "capacity --db a FIFO": (
        lambda t, d, docs: ["capacity", "--model", t, "--data", docs, "--db", _fifo(d)],
        None,
        "is a FIFO",
    ),
    "capacity --db a symlink": (
        lambda t, d, docs: ["capacity", "--model", t, "--data", docs, "--db", _symlink(d)],
        None,
        "symbolic link",
    ),
    "capacity --db needing a folder under /proc": (
        lambda t, d, docs: ["capacity", "--model", t, "--data", docs, "--db", "/proc/prototok-test/r.db"],
        None,
        "cannot write",
    ),
    "capacity --db whose .protos is a file": (
        lambda t, d, docs: ["capacity", "--model", t, "--data", docs, "--db", _protos_is_a_file(d)],
        None,
        "not a folder",
    ),
    "capacity --db a foreign SQLite database": (
        lambda t, d, docs: [
            "capacity",
            "--model",
            t,
            "--data",
            docs,
            "--db",
            _foreign_db(d),
            "--dry-run",
            "--min-chars",
            "300",
        ],
        None,
        "something else",
    ),
    "capacity --batch-size 0": (
        lambda t, d, docs: ["capacity", "--model", t, "--data", docs, "--db", d / "r.db", "--batch-size", "0"],
        None,
        None,
    ),
    "report of a foreign database": (
        lambda t, d, docs: ["report", "--db", _foreign_db(d), "--out", d / "rep"],
        None,
        "something else",
    ),
    "report of a non-database": (
        lambda t, d, docs: ["report", "--db", _symlink(d).parent / "target.safetensors", "--out", d / "rep"],
        None,
        "not a usable results database",
    ),
    "report --out a file": (
        lambda t, d, docs: ["report", "--db", _foreign_db(d), "--out", _symlink(d).parent / "target.safetensors"],
        None,
        "is a file",
    ),
    "report --out under /proc": (
        lambda t, d, docs: ["report", "--db", _foreign_db(d), "--out", "/proc/prototok-test"],
        None,
        "cannot write",
    ),
    "encoder train --out a file": (
        lambda t, d, docs: ["encoder", "train", "--model", t, "--data", TEXT, "--out", _symlink(d)],
        None,
        None,
    ),
    "encoder train --batch-size 0": (
        lambda t, d, docs: ["encoder", "train", "--model", t, "--data", TEXT, "--out", d / "e", "--batch-size", "0"],
        None,
        None,
    ),
}


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    return write_docs(tmp_path_factory.mktemp("hostile-docs"), seed=2)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_exit_2_one_line_nothing_written(name, tiny_dir, valid, docs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the Hub-id case must fail at once, online or not
    monkeypatch.setenv("PROTOTOK_CACHE", str(tmp_path / "cache"))  # outside the snapshotted folder
    (tmp_path / "valid.safetensors").write_bytes(valid.read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    build, stdin, match = CASES[name]
    args = build(tiny_dir, work, docs)
    before = snapshot(work)
    t0 = time.perf_counter()
    r = invoke(args, input=stdin)
    assert time.perf_counter() - t0 < 30
    assert_bad_input(r, work, before, match)
    assert os.path.exists("/dev/null") and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_read_only_filesystem_is_refused_up_front(tiny_dir, tmp_path, monkeypatch):
    """A read-only filesystem, mocked: creating any file fails with EROFS (root cannot be stopped by chmod)."""
    import tempfile

    def erofs(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", erofs)
    before = snapshot(tmp_path)
    r = invoke([*ENCODE, "--model", tiny_dir, "-o", tmp_path / "p.safetensors"])
    assert_bad_input(r, tmp_path, before, "Read-only file system")
    r = invoke(["capacity", "--model", tiny_dir, "--data", tmp_path, "--db", tmp_path / "sub" / "r.db"])
    assert_bad_input(r, tmp_path, before, "Read-only file system")


def test_raw_bytes_on_a_real_stdin(tiny_dir, tmp_path):
    """Through a real pipe and argv (not CliRunner's): bytes that are not UTF-8 are bad input, not a crash."""
    cmd = [sys.executable, "-m", "prototok", "encode", "--model", str(tiny_dir), "-o", str(tmp_path / "p")]
    r = subprocess.run(cmd, input=b"the \xff cat", capture_output=True, timeout=120)
    assert r.returncode == 2 and r.stderr.decode().strip().count("\n") == 0, r.stderr
    assert b"UTF-8" in r.stderr and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------- decode's model, --debug, the rest


def test_decode_without_model_says_which_and_refuses_fetching(valid, tmp_path, monkeypatch):
    monkeypatch.setenv("PROTOTOK_CACHE", str(tmp_path / "cache"))
    r = invoke(["decode", valid])
    assert r.exit_code == 0 and r.stdout.splitlines()[0] == TEXT
    assert r.stderr.count("\n") == 1 and "made for" in r.stderr  # one line: which model, and why
    tensors, meta = read_parts(valid)
    for name in ("nobody/some-model", str(tmp_path / "m.gguf"), "smollm2-135m"):
        (tmp_path / "m.gguf").write_bytes(b"GGUF")
        path = tmp_path / "named.safetensors"
        rewrite(path, dict(tensors), dict(meta, model=name))
        before = snapshot(tmp_path)
        assert_bad_input(invoke(["decode", path]), tmp_path, before, "--trust-file-model")


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    r = invoke(["--debug", "decode", tmp_path / "none.safetensors"])
    assert isinstance(r.exception, PrototokError)
    monkeypatch.setenv("PROTOTOK_DEBUG", "1")
    r = invoke(["decode", tmp_path / "none.safetensors"])
    assert isinstance(r.exception, PrototokError)


def test_files_respect_the_umask(valid, tmp_path):
    proto = ProtoTokens.load(valid)
    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        old = os.umask(mask)
        try:
            path = proto.save(tmp_path / f"u{mask:o}.safetensors")
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == mode


def test_rank_file_with_a_quote_in_a_table_name_merges(tmp_path):
    from prototok.distributed import merge_rank_stores, rank_path
    from prototok.store import Store

    db = tmp_path / "r.db"
    Store(db).close()
    with Store(rank_path(db, 0)) as part:
        part.db.execute('CREATE TABLE "we""ird" (id INTEGER PRIMARY KEY, "k""ey" TEXT UNIQUE)')
        part.db.execute('INSERT INTO "we""ird" ("k""ey") VALUES (?)', ("x",))
    merge_rank_stores(db)
    with Store(db) as st:
        assert [tuple(r) for r in st.db.execute('SELECT "k""ey" FROM "we""ird"')] == [("x",)]
    assert not rank_path(db, 0).exists()


def test_row_paths_outside_the_protos_folder_are_refused(tmp_path):
    from prototok.store import Store

    with Store(tmp_path / "r.db") as st:
        assert st.proto_file("r.protos/capacity/a.safetensors") == (tmp_path / "r.protos/capacity/a.safetensors")
        for bad in ("../x.safetensors", "/etc/passwd", "r.protos/../../x", "other/a.safetensors"):
            with pytest.raises(PrototokError, match="outside"):
                st.proto_file(bad)


def test_report_reads_without_writing_and_creates_out_last(tmp_path):
    """The report opens the database read-only: no -wal/-shm, no change to the file; a bad one leaves no --out."""
    from prototok.store import Store

    Store(tmp_path / "r.db").close()
    before = snapshot(tmp_path)
    r = invoke(["report", "--db", tmp_path / "r.db", "--out", tmp_path / "rep"])
    assert r.exit_code == 0, r.output
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("rep")} == before
