"""Scale-out on CPU with gloo, 2 processes: torchrun runs of the experiment commands give the same rows as one
process, a group's shared m is the same on every rank, and a run with a killed rank resumes without loss or
duplicates. Subprocesses each import torch: the file takes ~1-2 minutes on 2 busy cores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from prototok.cli import main
from prototok.distributed import RankStore, merge_rank_stores, rank_path, rank_paths, shard
from prototok.fit import fit
from prototok.recipes import get_recipe
from prototok.store import GEOMETRY_KEY, KEY, Row, Store

from .conftest import write_docs

TINY_FIT = ["--recipe", "paper", "--lr", "0.1", "--steps", "12", "--min-chars", "300"]
SWEEP = ["--samples", "4", "--lengths", "4,8", "--seeds", "2", "--batch-size", "1"]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    return write_docs(tmp_path_factory.mktemp("docs"), seed=0)


def args(cmd: list[str], tiny_dir, docs, db, extra=SWEEP) -> list[str]:
    return [*cmd, "--model", str(tiny_dir), "--data", str(docs), "--db", str(db), *TINY_FIT, *extra]


def torchrun(argv: list[str], nproc: int = 2) -> subprocess.Popen:
    """`torchrun --standalone --nproc-per-node 2 -m prototok ...` (a free port found by the launcher)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return subprocess.Popen(
        [*cmd, "-m", "prototok", *argv], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finished(p: subprocess.Popen) -> str:
    out, _ = p.communicate(timeout=240)
    assert p.returncode == 0, out
    return out


def table(db) -> dict:
    with Store(db) as st:
        rows = st.rows()
    by_key = {tuple(r[k] for k in KEY): r for r in rows}
    assert len(by_key) == len(rows)  # no duplicates
    return by_key


def same_results(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        got = [b[k][c] for c in ("accuracy", "steps", "decode_accuracy", "batch_size")]
        assert [a[k][c] for c in ("accuracy", "steps", "decode_accuracy", "batch_size")] == got, k


@pytest.fixture(scope="module")
def reference(tiny_dir, docs, tmp_path_factory):
    """One process, no torchrun: the rows a distributed run must reproduce."""
    db = tmp_path_factory.mktemp("one") / "r.db"
    for cmd, extra in ((["capacity"], SWEEP), (["ablate", "sharing"], SHARING)):
        r = CliRunner().invoke(main, args(cmd, tiny_dir, docs, db, extra))
        assert r.exit_code == 0, r.output
    assert rank_paths(db) == []  # a single process writes no rank files
    return table(db)


SHARING = ["--samples", "4", "--lengths", "4", "--groups", "1,2,4"]  # 1: whole on one rank; 2, 4: split


def test_two_ranks_write_what_one_process_writes(tiny_dir, docs, tmp_path, reference):
    """Groups of 2 and 4 split over both ranks (all-reduced), groups of 1 dealt whole; capacity (per-text
    vectors dealt by turn) is compared in the crash test below, after its rerun."""
    db = tmp_path / "r.db"
    out = finished(torchrun(args(["ablate", "sharing"], tiny_dir, docs, db, SHARING)))
    assert out.count("results in") == 1  # rank 0 alone reports
    assert rank_paths(db) == []  # merged into the main database, then removed
    rows = table(db)
    same_results({k: v for k, v in reference.items() if k[0] == "sharing"}, rows)
    for r in rows.values():
        assert (db.parent / r["proto_path"]).is_file()
    assert {r["batch_size"] for r in rows.values() if r["sharing"] == "m/4"} == {4}


def _group_fit(rank: int, world: int, tiny_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    # a file rendezvous: no port to pick, so no race with another process taking it first
    torch.distributed.init_process_group("gloo", init_method=f"file://{out}.rdv", rank=rank, world_size=world)
    from prototok.models import load_model

    lm = load_model(tiny_dir, "cpu")
    lists = [lm.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    for share in ("m", "e"):
        res = fit(lm, lists, recipe=GROUP_RECIPE, seed=3, share=share, process_group=torch.distributed.group.WORLD)
        torch.save([(r.index, r.e, r.m, r.accuracy, r.steps) for r in res], f"{out}.{share}.{rank}")
    # Meet before tearing down: a rank that destroys its gloo pairs while the other still sends aborts the
    # other one ("terminate called without an active exception", seen once in CI).
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


TEXTS = ["the cat sat on the mat", "a dog ran to the park", "bird sang song in morning", "river flowed past old mill"]
GROUP_RECIPE = get_recipe("paper", lr=0.1, max_steps=15)


def test_a_group_split_over_ranks_shares_one_vector(tiny, tiny_dir, tmp_path):
    import torch.multiprocessing as mp

    out = str(tmp_path / "res")
    mp.spawn(_group_fit, args=(2, str(tiny_dir), out), nprocs=2, join=True)
    lists = [tiny.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    for share in ("m", "e"):
        r0, r1 = torch.load(f"{out}.{share}.0"), torch.load(f"{out}.{share}.1")
        assert [x[0] for x in r0] == [0, 2] and [x[0] for x in r1] == [1, 3]  # text i on rank i % 2
        pos = 2 if share == "m" else 1  # the shared vector: identical, bit for bit, on both ranks
        assert all(torch.equal(a[pos], b[pos]) for a in r0 for b in r1)
        assert len({x[4] for x in r0 + r1}) == 1  # one kept step for the whole group
        one = fit(tiny, lists, recipe=GROUP_RECIPE, seed=3, share=share)  # one process: same up to sum order
        for i, e, m, acc, steps in r0 + r1:
            assert (acc, steps) == (one[i].accuracy, one[i].steps)
            assert torch.allclose(e, one[i].e, atol=1e-4) and torch.allclose(m, one[i].m, atol=1e-4)


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _rank_pid(launcher: int, rank: int) -> int | None:
    for c in _children(launcher):
        env = Path(f"/proc/{c}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in env:
            return c
    return None


def test_a_killed_rank_loses_nothing_and_the_rerun_duplicates_nothing(tiny_dir, docs, tmp_path, reference):
    db = tmp_path / "r.db"
    p = torchrun(args(["capacity"], tiny_dir, docs, db))
    deadline, victim = time.time() + 180, None
    while time.time() < deadline and p.poll() is None:  # kill rank 1 right after its first commit
        part = rank_path(db, 1)
        if part.exists():
            with Store(part) as st:
                if st.count():
                    victim = _rank_pid(p.pid, 1)
                    break
        time.sleep(0.02)
    assert victim is not None, "rank 1 never committed"
    os.kill(victim, signal.SIGKILL)
    out, _ = p.communicate(timeout=120)
    assert p.returncode != 0, out  # the launcher stops the job when a rank dies
    with Store(rank_path(db, 1)) as st:
        committed = {tuple(r[k] for k in KEY) for r in st.rows()}
    assert committed and len(committed) < len(reference)

    out = finished(torchrun(args(["capacity"], tiny_dir, docs, db)))
    assert out.count("results in") == 1  # rank 0 alone reports
    rows = table(db)
    assert committed <= rows.keys()  # nothing the dead rank committed was lost
    same_results({k: v for k, v in reference.items() if k[0] == "capacity"}, rows)
    assert rank_paths(db) == []


GEOMETRY = ["--samples", "4", "--length", "4", "--seeds", "2", "--bezier-steps", "5", "--points", "3"]


def test_geometry_over_two_ranks_stores_what_one_process_stores(tiny_dir, docs, tmp_path):
    """Fits dealt by turn, the 4 Bezier paths dealt 2 + 2, every rank's measurements merged into the main
    database: the same geometry table as one process, with each path in it once."""
    tables = {}
    for name, launch in (("one", None), ("two", torchrun)):
        db = tmp_path / name / "g.db"
        argv = [*args(["geometry"], tiny_dir, docs, db, GEOMETRY)]
        if launch is None:
            r = CliRunner().invoke(main, argv)
            assert r.exit_code == 0, r.output
        else:
            out = finished(launch(argv))
            assert out.count("results in") == 1 and out.count("path s") == 4  # rank 0's summary has all four
        assert rank_paths(db) == []
        with Store(db) as st:
            tables[name] = {tuple(r[k] for k in GEOMETRY_KEY): r["value"] for r in st.geometry()}
    one, two = tables["one"], tables["two"]
    assert one.keys() == two.keys()
    assert sum(k[5] == "path" for k in one) == 4
    for k, v in one.items():
        if k[5] == "path":
            assert v["line_accuracy"] == two[k]["line_accuracy"] and v["curve_accuracy"] == two[k]["curve_accuracy"]
            assert two[k]["curve_loss"] == pytest.approx(v["curve_loss"], rel=1e-4)
        elif k[5] == "distance":
            assert two[k]["distance"] == pytest.approx(v["distance"], abs=1e-5)


def test_shard_and_merge(tmp_path):
    parts = [shard(7, r, 3, start=2) for r in range(3)]
    assert sorted(sum(parts, [])) == list(range(7)) and parts[1] == [2, 5]  # (2 + i) % 3 == 1
    db = tmp_path / "r.db"
    rows = [Row("capacity", "tiny", "src", s, 4, 0, "e m^(N-1)", "none", "paper", accuracy=0.5) for s in range(3)]
    with Store(db) as st:
        st.add(rows[:1])
    for r, chunk in enumerate([rows[:2], rows[1:]]):  # overlapping: a row swapped to both ranks
        with Store(rank_path(db, r)) as st:
            st.add(chunk)
    assert merge_rank_stores(db) == 2 and rank_paths(db) == []
    assert merge_rank_stores(db) == 0
    with Store(db) as st:
        assert sorted(r["sample"] for r in st.rows()) == [0, 1, 2]

    # an experiment's own table (geometry's) travels with the runs rows, created in the main database if missing
    geo = [("tiny", "src", "paper", "e m^(N-1)", 4, "path", f"s{i}/seed0-seed1", "", "fp", {"i": i}) for i in range(3)]
    for r, chunk in enumerate([geo[:2], geo[1:]]):
        with Store(rank_path(db, r)) as st:
            st.add_geometry(chunk)
    assert merge_rank_stores(db) == 3 and merge_rank_stores(db) == 0
    with Store(db) as st:
        assert [r["value"] for r in st.geometry()] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_a_rank_store_reads_geometry_with_the_main_database(tmp_path):
    """A rank sees the measurements already merged and its own, each key once, the main database's copy first."""
    geo = [("tiny", "src", "paper", "e m^(N-1)", 4, "path", f"s{i}/seed0-seed1", "", "fp", {"i": i}) for i in range(3)]
    with Store(tmp_path / "r.db") as main:
        assert RankStore(main, 1).geometry() == []  # neither file has the table yet
        main.add_geometry(geo[:2])
        rank = RankStore(main, 1)
        rank.add_geometry([geo[1][:-1] + ({"i": "rank copy"},), geo[2]])
        assert [r["value"] for r in rank.geometry()] == [{"i": 0}, {"i": 1}, {"i": 2}]
        assert [r["item"] for r in rank.geometry(item="s2/seed0-seed1")] == ["s2/seed0-seed1"]
        rank.close()
