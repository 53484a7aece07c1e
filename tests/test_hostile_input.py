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


def _vectors(**tensors):
    """Replace tensors by those computed from the file's own (checksums recomputed: the checks must refuse)."""

    def edit(have, meta):
        return have | {k: make(have) for k, make in tensors.items()}, meta

    return edit


def _hc_mem(first_tokens, lengths=None):
    """The file as a cramming baseline file ("hc-mem": one [mem] vector a text, t_1 given, the tiny tokenizer
    adding no BOS), with the given first tokens and lengths."""

    def edit(have, meta):
        fields = {"layout": "hc-mem", "extra": {"num_mem": 1, "first_tokens": first_tokens}}
        if lengths is not None:
            fields["lengths"] = lengths
        return {"e": have["e"].unsqueeze(1), "m": torch.zeros(1, 0)}, meta | fields

    return edit


METADATA_EDITS.update(
    {
        "m with no dimension": _vectors(m=lambda t: torch.tensor(1.0)),
        "m a single vector without its row axis": _vectors(m=lambda t: t["m"][0]),
        "NaN in e": _vectors(e=lambda t: t["e"] * float("nan")),
        "inf in m": _vectors(m=lambda t: t["m"] * float("inf")),
        "hc-mem first token past the vocabulary": _hc_mem([10**6, 3]),
        "hc-mem first token negative": _hc_mem([-1, 3]),
        "hc-mem first token a string": _hc_mem(["cat", 3]),
        "hc-mem text past the context with its mem": _hc_mem([3, 3], lengths=[48, 2]),  # 1 mem + 48 > 48
        "e m^N text past the context": edited(layout="e m^N", lengths=[48, 2]),  # e + 48 m > 48 positions
    }
)


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
    """Files written before the checksum covered the metadata (format version 1) have only tensor_sha256: they
    still load, with one warning line saying their metadata is not verified."""
    tensors, meta = read_parts(valid)
    meta["format_version"] = 1
    path = tmp_path / "old.safetensors"
    rewrite(path, tensors, meta, checksum="none")
    r = invoke(["decode", path, "--model", tiny_dir])
    assert r.exit_code == 0 and r.stdout.splitlines()[0] == TEXT
    warned = [line for line in r.stderr.splitlines() if "checksum" in line]
    assert len(warned) == 1 and "not verified" in warned[0], r.stderr


def test_decode_refuses_a_current_file_whose_checksum_was_removed(valid, tiny_dir, tmp_path):
    """A file of the current format always carries the metadata checksum: without it, it was edited."""
    tensors, meta = read_parts(valid)
    path = tmp_path / "p.safetensors"
    rewrite(path, tensors, meta, checksum="none")
    before = snapshot(tmp_path)
    assert_bad_input(invoke(["decode", path, "--model", tiny_dir]), tmp_path, before, "checksum was removed")


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

# Every option is checked before the model loads. These cases name a model that cannot load: one that reached
# the model would fail with "unknown model", not with the line its case expects.
NO_MODEL = "no-such-model"


def _enc(*extra):
    return lambda t, d, docs: ["encode", TEXT, "--model", NO_MODEL, *extra, "-o", d / "p.safetensors"]


def _exp(*cmd_and_extra):
    cmd = list(cmd_and_extra[:2]) if cmd_and_extra[0] == "ablate" else [cmd_and_extra[0]]
    extra = cmd_and_extra[len(cmd) :]
    return lambda t, d, docs: [*cmd, "--model", NO_MODEL, "--data", docs, "--db", d / "r.db", *extra]


def _train(*extra):
    return lambda t, d, docs: ["encoder", "train", "--model", NO_MODEL, "--data", TEXT, "-o", d / "e", *extra]


def _eval(*extra):
    return lambda t, d, docs: ["encoder", "eval", d / "no-ckpt", "--model", NO_MODEL, "--data", TEXT, *extra]


def _config(body: str, suffix: str = ".json"):
    def build(t, d, docs):
        (d / f"c{suffix}").write_text(body)
        return ["encode", TEXT, "--model", NO_MODEL, "--config", d / f"c{suffix}", "-o", d / "p.safetensors"]

    return build


BEFORE_LOAD = {
    "encode --layout foo": (_enc("--layout", "foo"), "unknown layout"),
    "capacity --layout foo": (_exp("capacity", "--layout", "foo"), "unknown layout"),
    "ablate layouts --layouts foo": (_exp("ablate", "layouts", "--layouts", "e m^N,foo"), "unknown layout"),
    "ablate sharing --layout foo": (_exp("ablate", "sharing", "--layout", "foo"), "unknown layout"),
    "geometry --layout foo": (_exp("geometry", "--layout", "foo"), "unknown layout"),
    "encoder train --layout foo": (_train("--layout", "foo"), "unknown layout"),
    "encode --min-accuracy 5": (_enc("--min-accuracy", "5"), "--min-accuracy"),
    "encode --min-accuracy -0.1": (_enc("--min-accuracy", "-0.1"), "--min-accuracy"),
    "encode --min-accuracy nan": (_enc("--min-accuracy", "nan"), "not a finite number"),
    "encode --refine -3": (_enc("--encoder", "enc", "--refine", "-3"), "--refine"),
    "encode --lr nan": (_enc("--lr", "nan"), "not a finite number"),
    "encode --lr inf": (_enc("--lr", "inf"), "not a finite number"),
    "encode --lr 0": (_enc("--lr", "0"), "--lr"),
    "encode --lr -1": (_enc("--lr", "-1"), "--lr"),
    "encode --init-scale nan": (_enc("--init-scale", "nan"), "not a finite number"),
    "encode --init-scale -inf": (_enc("--init-scale", "-inf"), "--init-scale"),
    "encode --recipe paper:lr=nan": (_enc("--recipe", "paper:lr=nan"), "Recipe.lr must be a finite number"),
    "encode --recipe paper:lr=inf": (_enc("--recipe", "paper:lr=inf"), "Recipe.lr must be a finite number"),
    "encode --recipe fast-e50:e_scale=inf": (_enc("--recipe", "fast-e50:e_scale=inf"), "Recipe.e_scale"),
    "encode --recipe paper:betas=0.9/nan": (_enc("--recipe", "paper:betas=0.9/nan"), "Recipe.betas"),
    "encode --recipe paper:weight_decay=nan": (_enc("--recipe", "paper:weight_decay=nan"), "Recipe.weight_decay"),
    "encode --config with lr NaN": (_config('{"lr": NaN}'), "not a finite number"),
    "encode --config with layout foo": (_config('layout = "foo"\n', ".toml"), "unknown layout"),
    "capacity --lr inf": (_exp("capacity", "--lr", "inf"), "not a finite number"),
    "capacity --init-scale nan": (_exp("capacity", "--init-scale", "nan"), "not a finite number"),
    "capacity --recipe paper:lr=nan": (_exp("capacity", "--recipe", "paper:lr=nan"), "Recipe.lr"),
    "capacity --threshold 2": (_exp("capacity", "--threshold", "2"), "--threshold"),
    "capacity --threshold nan": (_exp("capacity", "--threshold", "nan"), "not a finite number"),
    "capacity --first-scale nan": (_exp("capacity", "--first-scale", "nan"), "not a finite number"),
    "ablate layouts --lr nan": (_exp("ablate", "layouts", "--lr", "nan"), "not a finite number"),
    "ablate sharing --init-scale inf": (_exp("ablate", "sharing", "--init-scale", "inf"), "not a finite number"),
    "geometry --lr nan": (_exp("geometry", "--lr", "nan"), "not a finite number"),
    "geometry --bezier-lr inf": (_exp("geometry", "--bezier-lr", "inf"), "not a finite number"),
    "encoder train --lr nan": (_train("--lr", "nan"), "not a finite number"),
    "encoder train --max-minutes inf": (_train("--max-minutes", "inf"), "not a finite number"),
    "encoder train --holdout 1": (_train("--holdout", "1"), "--holdout"),
    "encoder eval --lr inf": (_eval("--lr", "inf"), "not a finite number"),
    "encoder eval --recipe paper:lr=nan": (_eval("--recipe", "paper:lr=nan"), "Recipe.lr"),
    "encode --db a foreign SQLite database": (lambda t, d, docs: _enc("--db", _foreign_db(d))(t, d, docs), "else"),
    "encode --db a FIFO": (lambda t, d, docs: _enc("--db", _fifo(d))(t, d, docs), "is a FIFO"),
    "encode --db whose .protos is a file": (
        lambda t, d, docs: _enc("--db", _protos_is_a_file(d))(t, d, docs),
        "folder",
    ),
    "encode --db a folder": (lambda t, d, docs: _enc("--db", _dir(d))(t, d, docs), "is a directory"),
}
CASES.update({name: (build, None, match) for name, (build, match) in BEFORE_LOAD.items()})


def _loader_reached(*args, **kwargs):
    raise AssertionError("the model loader was reached before the options were checked")


def _config_of(name: str, body: str):
    """encode with a config file (no TEXT: a config may give it) on the tiny model."""

    def build(t, d, docs):
        (d / name).write_text(body)
        return ["encode", "--model", t, "--config", d / name, "-o", d / "p.safetensors"]

    return build


def _anchor_bomb() -> str:
    """YAML aliases nested ten deep under `file`: 9**10 paths if anything walked the whole value."""
    levels = ["&a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return f"file: [{', '.join(levels)}]\n"


def _damaged_db(tmp: Path) -> Path:
    """A results database with a valid header and one page of garbage (a disk error, a bad copy)."""
    from prototok.store import Row, Store

    db = tmp / "damaged.db"
    with Store(db) as store:
        store.add([Row("capacity", "m", "s", i, 8, 0, "e m^(N-1)", "none", "paper", doc="x" * 3000) for i in range(40)])
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=DELETE")  # every page in the file itself, no -wal beside it
    con.close()
    data = bytearray(db.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    assert len(data) > 5 * size
    data[4 * size : 4 * size + 64] = b"\xab" * 64  # page 5
    db.write_bytes(bytes(data))
    return db


TINY_CAPACITY = ["--samples", "1", "--lengths", "4", "--steps", "3", "--min-chars", "100"]
CASES.update(
    {
        "--config file a number": (_config_of("c.json", '{"file": [1]}'), None, "'file' to 1"),
        "--config steps a list": (_config_of("c.json", '{"steps": [5]}'), None, "'steps' to a list"),
        "--config output a number": (_config_of("c.json", '{"output": 5}'), None, "'output' to 5"),
        "--config text a list (one text a file)": (_config_of("c.json", '{"text": ["a", "b"]}'), None, "one value"),
        "--config TOML file a nested list": (_config_of("c.toml", 'file = [["a.txt"]]\n'), None, "'file' to a list"),
        "--config YAML anchor bomb under file": (_config_of("c.yaml", _anchor_bomb()), None, "'file' to a list"),
        "--config a mapping for a flag": (_config_of("c.json", '{"json": {"a": 1}}'), None, "true or false"),
        "report of a damaged database": (
            lambda t, d, docs: ["report", "--db", _damaged_db(d), "-o", d / "rep"],
            None,
            "damaged SQLite database",
        ),
        "export of a damaged database": (
            lambda t, d, docs: ["export", "--db", _damaged_db(d), "-o", d / "runs.csv"],
            None,
            "damaged SQLite database",
        ),
        "capacity --db a damaged database (left as it was)": (
            lambda t, d, docs: ["capacity", "--model", t, "--data", docs, "--db", _damaged_db(d), *TINY_CAPACITY],
            None,
            "damaged SQLite database",
        ),
        "fetch-model an unknown name": (lambda t, d, docs: ["fetch-model", "no-such"], None, "unknown built-in"),
    }
)


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
    if name in BEFORE_LOAD:  # reaching the model loader at all fails the case (exit 1, not 2)
        monkeypatch.setattr("prototok.models.load_model", _loader_reached)
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


def test_replacing_a_file_keeps_its_mode(valid, tmp_path):
    """A private (0600) file stays private when it is written again, as an in-place write would keep it."""
    proto = ProtoTokens.load(valid)
    path = proto.save(tmp_path / "private.safetensors")
    os.chmod(path, 0o600)
    proto.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)
    proto.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_file_of_many_long_texts_decodes_in_bounded_forwards(valid, tiny, monkeypatch, tmp_path):
    """A small forged file (64 texts at the context's length) must not become one 64 x context forward: decode
    runs groups of texts within methods.DECODE_POSITIONS, and the tokens are those of one batch."""
    from prototok import methods
    from prototok.decode import decode_tokens

    tensors, meta = read_parts(valid)
    gen = torch.Generator().manual_seed(0)
    lengths = [47 - (i % 5) * 9 for i in range(64)]
    e, m = torch.randn(64, 64, generator=gen), torch.randn(1, 64, generator=gen)
    meta |= {"lengths": lengths, "accuracy": [0.0] * 64, "steps": [0] * 64, "text_sha256": ["0" * 64] * 64}
    path = tmp_path / "many.safetensors"
    rewrite(path, {"e": e, "m": m}, meta)
    proto = ProtoTokens.load(path)
    one_batch = decode_tokens(tiny, proto)  # 64 x 48 = 3072 positions: one forward under the default bound
    forwards = []
    real = methods.decode_vectors

    def counted(lm, e, m, lay, lengths):
        forwards.append(len(lengths) * max(lay.length(n) for n in lengths))
        return real(lm, e, m, lay, lengths)

    monkeypatch.setattr(methods, "decode_vectors", counted)
    monkeypatch.setattr(methods, "DECODE_POSITIONS", 200)
    assert decode_tokens(tiny, proto) == one_batch
    assert len(forwards) > 1 and max(forwards) <= 200 and sum(map(len, one_batch)) == sum(lengths)


FIRST_LOAD = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
import transformers
from tests.conftest import tiny_model, tiny_tokenizer

def read_model(*args, **kwargs):  # reading a GGUF: a slow dequantisation, logged per call
    if "gguf_file" in kwargs:
        with open(sys.argv[2], "a") as log:
            log.write("converted\\n")
        time.sleep(2)
    return tiny_model()

transformers.AutoTokenizer.from_pretrained = lambda *args, **kwargs: tiny_tokenizer()
transformers.AutoModelForCausalLM.from_pretrained = read_model
from prototok.models import load_model

ready = Path(sys.argv[4])
(ready / str(os.getpid())).touch()
while len(list(ready.iterdir())) < 2:  # both processes imported: they start loading together
    time.sleep(0.01)
lm = load_model(sys.argv[1], "cpu")
print(lm.fingerprint)
"""


def test_two_first_loads_at_once_convert_once_and_both_load(tmp_path):
    """Two processes load the same not-yet-converted GGUF at once (two jobs on a fresh cache): one converts, the
    other waits for it and loads its folder (before: the second died on '[Errno 39] Directory not empty')."""
    gguf, calls = tmp_path / "m.gguf", tmp_path / "conversions.log"
    gguf.write_bytes(b"GGUF")
    env = os.environ | {"PROTOTOK_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    root = str(Path(__file__).resolve().parents[1])
    (tmp_path / "ready").mkdir()
    cmd = [sys.executable, "-c", FIRST_LOAD, str(gguf), str(calls), root, str(tmp_path / "ready")]
    runs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [r.communicate(timeout=300) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], [o[1].decode()[-2000:] for o in outs]
    assert outs[0][0] == outs[1][0] and outs[0][0].strip()  # the same model, fingerprinted the same
    assert calls.read_text().splitlines() == ["converted"]
    models = tmp_path / "cache" / "models"
    assert [p.name for p in models.iterdir() if ".tmp-" in p.name] == []


def test_report_tables_stay_whole_with_a_pipe_or_a_line_break_in_a_source_name(tmp_path):
    """Source names are file paths and specs a user typed: 'a|b.txt' or one with a line break must not add a
    cell to its row or cut it in two. Every line of every table in report.md has its header's cell count."""
    import re

    from prototok.store import Row, Store

    fitted = {"accuracy": 1.0, "solved": 1, "steps": 10, "decode_seconds": 0.01, "fit_seconds": 1.0}
    rows = [
        Row("capacity", "tiny", source, sample, n, 0, "e m^(N-1)", "none", "paper", h_lm_bits=2.5 * n, **fitted)
        for source in ("docs/a|b.txt", "two\nlines")
        for sample in (0, 1)
        for n in (4, 8)
    ]
    with Store(tmp_path / "r.db") as store:
        store.add(rows)
    r = invoke(["report", "--db", tmp_path / "r.db", "-o", tmp_path / "rep"])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "docs/a\\|b.txt" in md and "two lines" in md
    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append(len(re.findall(r"(?<!\\)\|", line)))
        elif current:
            tables, current = tables + [current], []
    assert tables and all(len(set(cells)) == 1 for cells in tables), tables


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
