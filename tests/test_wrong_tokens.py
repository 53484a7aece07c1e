"""analysis.wrong_tokens: the wrong positions it lists for a walk's unsolved rows are what the stored accuracy
says."""

from click.testing import CliRunner

from prototok.analysis import wrong_tokens
from prototok.cli import main
from prototok.experiments.texts import load, prefixes
from prototok.store import Store

from .conftest import write_docs


def test_wrong_tokens_of_unsolved_rows_match_their_stored_accuracy(tiny, tiny_dir, tmp_path):
    (tmp_path / "docs").mkdir()
    docs, db = write_docs(tmp_path / "docs", seed=3), tmp_path / "r.db"
    args = ["capacity", "--model", tiny_dir, "--data", docs, "--db", db, "--lengths", "4,8,16", "--samples", "2"]
    args += ["--min-chars", "300", "--steps", "3", "--data-seed", "5"]  # 3 steps: most rows stay unsolved
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    source, samples = load(str(docs), 2, tiny, data_seed=5, min_chars=300)
    store = Store(db, readonly=True)
    rows = store.rows(source=source)
    tokens = {(p.sample, n): t for p in prefixes(tiny, samples, [4, 8, 16], h_lm=False) for n, t in p.tokens.items()}
    out = wrong_tokens.wrong_tokens(tiny, store, rows, tokens)
    unsolved = [r for r in rows if r["accuracy"] < 1.0]
    assert unsolved and len(out) == len(unsolved)
    for line in out:
        n = line["length"]
        assert round((1 - line["accuracy"]) * n) == len(line["wrong"]) > 0
        assert all(0 <= i < n and ref != got for i, ref, got in line["wrong"])
    recipe = rows[0]["recipe"]
    assert {r["recipe"] for r in rows} == {recipe}
    walked = wrong_tokens.walk_wrong_tokens(tiny, store, str(docs), recipe, samples=2, data_seed=5, min_chars=300)
    assert list(walked) == [{"source": source, **line} for line in out]  # the same rows, rebuilt from the walk's spec
