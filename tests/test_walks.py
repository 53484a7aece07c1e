"""analysis.walks: the per-text summary of a warm walk up to a length (what it sums and what counts as exact) and
the |e| table."""

from prototok.analysis import walks


def row(sample: int, length: int, accuracy: float, evals: int, seconds: float) -> dict:
    return {"sample": sample, "length": length, "accuracy": accuracy, "evals": evals, "fit_seconds": seconds}


def test_summary_sums_the_walk_up_to_its_length_and_needs_every_token_right():
    warm = walks.walk(
        [
            row(0, 4, 1.0, 10, 60),
            row(0, 8, 1.0, 20, 120),
            row(0, 16, 0.5, 99, 600),  # past the summary's length: not counted
            row(1, 4, 1.0, 5, 30),
            row(1, 8, 0.995, 40, 90),  # counts as reconstructed for capacity (>= 0.99), not as exact
            row(2, 4, 1.0, 7, 6),  # its walk has not reached 8 yet: neither exact nor failed
        ]
    )
    lines = walks.summary_at("wiki", warm, 8).splitlines()
    assert lines[4].split(" | ") == ["| 0", "1.000", "yes", "8", "30", "3.0 |"]
    assert lines[5].split(" | ") == ["| 1", "0.995", "no", "4", "45", "2.0 |"]
    assert lines[6].split(" | ") == ["| 2", "-", "-", "4", "7", "0.1 |"]


def test_norms_lists_each_texts_e_norm_and_accuracy_per_length_with_gaps_marked():
    warm = walks.walk([row(0, 4, 1.0, 10, 60), row(1, 4, 1.0, 5, 30), row(0, 8, 0.5, 20, 120)])
    lines = walks.norms("wiki", warm, lambda r: 100.0 * r["length"] + r["sample"]).splitlines()
    assert lines[2] == "| N | text 0 | text 1 |"
    assert lines[4] == "| 4 | 400 (1.000) | 401 (1.000) |"
    assert lines[5] == "| 8 | 800 (0.500) | - |"


def test_walk_tables_puts_a_cold_and_a_warm_walk_of_a_store_side_by_side(tiny_dir, tmp_path):
    from click.testing import CliRunner

    from prototok.cli import main
    from prototok.store import Store

    from .conftest import write_docs

    (tmp_path / "docs").mkdir()
    docs, db = write_docs(tmp_path / "docs", seed=3), tmp_path / "r.db"
    args = ["capacity", "--model", tiny_dir, "--data", docs, "--db", db, "--lengths", "4,5", "--samples", "2"]
    args += ["--min-chars", "300", "--steps", "200", "--recipe", "fast-e50"]
    for warm in ("cold", "prefix"):
        r = CliRunner().invoke(main, [str(a) for a in [*args, "--warm", warm]], catch_exceptions=False)
        assert r.exit_code == 0, r.output
    store = Store(db, readonly=True)
    recipe = next(r["recipe"] for r in store.rows() if not r["recipe"].endswith(walks.WARM_SUFFIX))
    blocks = walks.walk_tables(store, recipe, at=5, with_norms=True)
    assert len(blocks) == 3  # one source: its table, its summary at 5, its |e| table
    table = blocks[0].splitlines()
    assert [line.split(" | ")[0] for line in table[4:]] == ["| 4", "| 5"]
    assert table[4].split(" | ")[6] == "1.00"  # warm and cold at the first length: both drawn, the same work
    evals = {key: sum(r["evals"] for r in store.rows(recipe=key)) for key in (recipe, recipe + walks.WARM_SUFFIX)}
    assert table[5].split(" | ")[4:6] == [str(evals[recipe]), str(evals[recipe + walks.WARM_SUFFIX])]
    assert blocks[1].startswith(f"{store.rows()[0]['source']}, 5 tokens")
    assert blocks[2].splitlines()[2] == "| N | text 0 | text 1 |"


def test_capacity_table_reads_a_csv_export_as_its_store_and_sums_each_walk(tiny_dir, tmp_path):
    import importlib.util
    from pathlib import Path

    from click.testing import CliRunner

    from prototok.cli import main
    from prototok.experiments.capacity import summarize
    from prototok.store import Store

    from .conftest import write_docs

    path = Path(__file__).parents[1] / "studies" / "capacity_table.py"
    spec = importlib.util.spec_from_file_location("capacity_table", path)
    ct = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ct)

    (tmp_path / "docs").mkdir()
    docs, db, out = write_docs(tmp_path / "docs", seed=3), tmp_path / "r.db", tmp_path / "r.csv"
    args = ["capacity", "--model", tiny_dir, "--data", docs, "--db", db, "--lengths", "4,5,8", "--samples", "2"]
    args += ["--min-chars", "300", "--steps", "200", "--recipe", "fast-e50", "--warm", "prefix"]
    for a in (args, ["export", "--db", db, "--table", "runs", "--format", "csv", "-o", out]):
        r = CliRunner().invoke(main, [str(x) for x in a], catch_exceptions=False)
        assert r.exit_code == 0, r.output
    stored = Store(db, readonly=True).rows()
    back = ct.csv_rows(out)
    assert [(r["sample"], r["length"], r["accuracy"], r["evals"]) for r in back] == [
        (r["sample"], r["length"], r["accuracy"], r["evals"]) for r in stored
    ]
    settings = ct.group_by(back, *ct.SETTING)
    assert ct.table(settings) == ct.table(ct.group_by(stored, *ct.SETTING))
    assert len(settings) == 1  # one setting: the walk above
    cells = ct.table(settings).splitlines()[2].split(" | ")
    s = summarize(stored)
    assert cells[6] == f"**{s.capacity}**"
    caps = {x.sample: x.capacity for x in s.samples}
    assert cells[7] == ", ".join(str(caps[k]) for k in sorted(caps))
    to_cap = [sum(r["evals"] for r in stored if r["sample"] == k and r["length"] <= caps[k]) for k in sorted(caps)]
    assert cells[8] == ", ".join(map(str, to_cap))
    assert cells[9] == ", ".join(str(sum(r["evals"] for r in stored if r["sample"] == k)) for k in sorted(caps))
    assert cells[-1].startswith("128 / 128 (PG-19 / Fanfics)")  # Pythia-160M, [OS] Table 3, no sharing
    assert ct.plot(settings, tmp_path / "f.png").stat().st_size > 0
