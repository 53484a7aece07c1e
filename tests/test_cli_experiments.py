"""The experiment commands on the tiny model: `capacity --method cram-sink` (the former `cram`; both accuracies,
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


def test_geometry_text_distances_all_pairs_and_probing(tiny_dir, docs, tmp_path):
    """Fig. 5: every pair of texts gets its TF-IDF distance (of the texts as decoded) beside the mean distance
    of their solutions; --all-pairs connects every pair of a text's solutions; --probe generates from each
    solution; the report draws Fig. 5 and the probing table."""
    from prototok.analysis.text_distances import tfidf_distances
    from prototok.models import load_model

    path = tmp_path / "g.db"
    geo = ["--model", tiny_dir, "--data", docs, "--db", path, "--length", "6", "--seeds", "3", *TINY[:-1], "3"]
    r = cli(
        "geometry", *geo, "--bezier-steps", "2", "--points", "3", "--all-pairs", "--text-distance", "tfidf", "--probe"
    )
    assert r.exit_code == 0, r.output
    with Store(path) as store:
        texts = store.geometry(kind="text-distance")
        dist = store.geometry(kind="distance")
        paths = store.geometry(kind="path")
        fits = {r["sample"]: r for r in store.rows(experiment="geometry")}
        probes = store.geometry(kind="probe")
    # probing: every solution from [e, m]; the tiny tokenizer names no BOS, so no [BOS, e, m] rows
    assert len(probes) == 9 and {r["params"] for r in probes} == {"e m"}
    assert all(0 <= r["value"]["accuracy"] <= 1 and r["value"]["prefix"] <= 6 for r in probes)
    assert sorted(r["item"] for r in paths) == [
        f"s{t}/seed{a}-seed{b}" for t in range(3) for a, b in ((0, 1), (0, 2), (1, 2))
    ]
    assert sorted(r["item"] for r in texts) == ["s0|s1", "s0|s2", "s1|s2"] and {r["params"] for r in texts} == {"tfidf"}
    lm = load_model(str(tiny_dir), "cpu")
    from prototok.experiments import texts as tx

    _, samples = tx.load(str(docs), 3, lm, min_chars=300)
    words = [lm.tokenizer.decode(p.tokens[6]) for p in tx.prefixes(lm, samples, [6], h_lm=False)]
    expected = tfidf_distances(words)
    for r in texts:
        a, b = (int(x[1:]) for x in r["item"].split("|"))
        assert r["value"]["text"] == pytest.approx(float(expected[a, b]), abs=1e-6)
        between = [
            d["value"]["distance"]
            for d in dist
            if {d["item"].split("|")[0][:2], d["item"].split("|")[1][:2]} == {f"s{a}", f"s{b}"}
        ]
        assert len(between) == 9 and r["value"]["distance"] == pytest.approx(sum(between) / 9, rel=1e-5)
    assert fits  # the solutions themselves are stored rows
    out = tmp_path / "rep"
    assert cli("report", "--db", path, "--out", out).exit_code == 0
    md = (out / "report.md").read_text()
    assert "Fig. 5: per pair of texts" in md and "| tfidf | 3 |" in md and "| e m | 9 |" in md
    assert (out / "fig5_text_distances.png").read_bytes()[:4] == b"\x89PNG"


def test_minilm_text_distance_puts_paraphrases_closer():
    from prototok.analysis.text_distances import text_distances

    d = text_distances(
        "minilm", ["The cat sat on the mat.", "A cat was sitting on a rug.", "Stock markets fell sharply."]
    )
    assert d.shape == (3, 3) and float(d[0, 1]) < float(d[0, 2]) and float(d[0, 1]) < float(d[1, 2])
