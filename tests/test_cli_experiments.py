"""Issue 5 on the tiny model: `capacity --method cram-sink` (issue 12: the former `cram`; both accuracies,
resumable), the store migration, the first_scale knob, `geometry` (stored, resumable, same-context groups) and
the report's Figs. 3, 4, 6, 7."""

import sqlite3

import pytest
import torch
from click.testing import CliRunner

from prototok.baselines.cramming import CramConfig, cram
from prototok.cli import main
from prototok.store import Row, Store

from .conftest import write_docs

TINY = ["--lr", "0.1", "--steps", "40", "--min-chars", "300", "--samples", "2"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    return write_docs(tmp_path_factory.mktemp("docs5"), seed=1)


@pytest.fixture(scope="module")
def db(tiny_dir, docs, tmp_path_factory):
    """One database with one-pass and cramming capacity rows and a geometry run."""
    path = tmp_path_factory.mktemp("db5") / "r.db"
    common = ["--model", tiny_dir, "--data", docs, "--db", path, "--lengths", "4,8", *TINY]
    r = cli("capacity", *common)
    assert r.exit_code == 0, r.output
    r = cli("capacity", "--method", "cram-sink", *common)
    assert r.exit_code == 0, r.output
    assert "greedy generation accuracy" in r.output
    geo = ["--model", tiny_dir, "--data", docs, "--db", path, "--length", "6", "--seeds", "2", *TINY]
    r = cli("geometry", *geo, "--bezier-steps", "5", "--points", "5")
    assert r.exit_code == 0, r.output
    assert "same-text" in r.output and "path s0/seed0-seed1" in r.output
    return path, common, geo


def test_cram_capacity_stores_both_accuracies_and_resumes(db):
    path, common, _ = db
    with Store(path) as store:
        rows = store.rows(experiment="capacity", layout="mem")
        n = store.count()
        onepass = store.rows(experiment="capacity", layout="e m^(N-1)")
    assert rows and onepass
    assert {r["recipe"] for r in rows} == {"cram(num_mem=1,lr=0.1,max_steps=40)"}
    for r in rows:
        assert r["gen_accuracy"] is not None and 0 <= r["accuracy"] <= 1
        assert r["decode_accuracy"] == pytest.approx(r["gen_accuracy"])  # the stored file regenerates the text
        assert r["decode_seconds"] > 0 and r["decode_tokens"] > 0 and r["fit_seconds"] > 0
    assert all(r["gen_accuracy"] is None for r in onepass)
    r = cli("capacity", "--method", "cram-sink", *common)
    assert r.exit_code == 0, r.output
    with Store(path) as store:
        assert store.count() == n  # nothing refitted or duplicated


def test_old_database_gets_the_new_column(tmp_path):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    cols = [f"{c} TEXT" for c in Row.__dataclass_fields__ if c != "gen_accuracy"]
    con.execute(f"CREATE TABLE runs (id INTEGER PRIMARY KEY, {', '.join(cols)})")
    con.execute("INSERT INTO runs (experiment, model) VALUES ('capacity', 'old')")
    con.commit()
    con.close()
    with Store(path) as store:
        (row,) = store.rows()
        assert row["model"] == "old" and row["gen_accuracy"] is None


def test_first_scale_scales_mem_1_init(tiny):
    toks = [tiny.tokenizer("past old mill", add_special_tokens=False)["input_ids"]]
    (a,) = cram(tiny, toks, CramConfig(num_mem=2, max_steps=0))
    (b,) = cram(tiny, toks, CramConfig(num_mem=2, max_steps=0, first_scale=20))
    assert torch.allclose(b.mem[0], 20 * a.mem[0]) and torch.equal(b.mem[1], a.mem[1])
    (c,) = cram(tiny, toks, CramConfig(num_mem=1, lr=0.1, max_steps=300, first_scale=20))
    assert c.solved and c.gen_accuracy == 1.0


def test_geometry_stores_resumes_and_groups_same_context(db, tiny_dir, docs):
    path, _, geo = db
    with Store(path) as store:
        rows = store.geometry()
        fits = store.rows(experiment="geometry")
    kinds = {r["kind"] for r in rows}
    assert kinds == {"distance", "vector", "path"} and len(fits) == 4  # 2 texts x 2 seeds
    groups = {r["value"]["group"] for r in rows if r["kind"] == "distance"}
    assert groups == {"same-text", "different-context"}
    path_row = next(r for r in rows if r["kind"] == "path")["value"]
    assert path_row["length_ratio"] >= 1.0 - 1e-6 and len(path_row["line_accuracy"]) == 5
    r = cli("geometry", *geo, "--bezier-steps", "5", "--points", "5")
    assert r.exit_code == 0, r.output
    with Store(path) as store:
        assert len(store.geometry()) == len(rows) and store.count() == len(store.rows())

    # another length on the same texts is another measurement: its paths are fitted, not taken as stored
    r = cli("geometry", *[a if a != "6" else "4" for a in geo], "--bezier-steps", "5", "--points", "5")
    assert r.exit_code == 0, r.output
    with Store(path) as store:
        assert {r["length"] for r in store.geometry(kind="path")} == {4, 6}

    gen = ["--model", tiny_dir, "--data", f"generated:{docs}", "--db", path, "--length", "5", "--seeds", "1"]
    r = cli("geometry", *gen, "--contexts", "2", "--continuations", "2", "--pairs", "0", *TINY)
    assert r.exit_code == 0, r.output
    with Store(path) as store:
        groups = {r["value"]["group"] for r in store.geometry(kind="distance", length=5)}
    assert groups == {"same-context", "different-context"}


def test_report_renders_the_new_figures(db, tmp_path):
    path, _, _ = db
    out = tmp_path / "rep"
    r = cli("report", "--db", path, "--out", out)
    assert r.exit_code == 0, r.output
    md = (out / "report.md").read_text()
    for heading in ("## Cramming baseline", "### Fig. 3", "### Fig. 4", "## Geometry of solutions", "same-text"):
        assert heading in md
    for png in ("fig3_hlm_onepass_vs_cram", "fig4_throughput", "fig6_distances", "fig7_paths"):
        assert (out / f"{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_geometry_input_and_help(docs, tmp_path):
    r = cli("geometry", "--data", docs, "--continuations", "2", "--db", tmp_path / "x.db")
    assert r.exit_code != 0 and "generated:SOURCE" in r.output
    for cmd in (["geometry"], ["capacity"]):
        assert cli(*cmd, "--help").exit_code == 0
    assert "--method" in cli("capacity", "--help").output
