"""The results store: one row per key, atomic commits, refusals of stale or foreign databases."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from prototok.errors import PrototokError
from prototok.store import KEY, Row, Store


def row(sample=0, length=4, seed=0, **kw):
    base = dict(
        experiment="capacity",
        model="m",
        source="s",
        sample=sample,
        length=length,
        seed=seed,
        layout="e m^(N-1)",
        sharing="none",
        recipe="paper",
    )
    return Row(**(base | kw))


def test_a_key_is_stored_once_and_the_first_result_wins(tmp_path):
    with Store(tmp_path / "r.db") as st:
        assert st.add([row(accuracy=0.5), row(sample=1)]) == 2
        assert st.add([row(accuracy=1.0), row(sample=2)]) == 1  # sample 0 exists: ignored, not replaced
        rows = st.rows()
        assert [r["sample"] for r in rows] == [0, 1, 2] and rows[0]["accuracy"] == 0.5
        assert st.done(sample=2) == {tuple(row(sample=2).__dict__[k] for k in KEY)}
        assert rows[0]["created"] > 0
        with pytest.raises(ValueError, match="unknown column"):
            st.rows(nope=1)


def test_wal_mode_and_unique_key_are_in_the_file(tmp_path):
    Store(tmp_path / "r.db").close()
    db = sqlite3.connect(tmp_path / "r.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    assert f"UNIQUE ({', '.join(KEY)})" in sql


def test_a_failed_transaction_leaves_nothing(tmp_path):
    with Store(tmp_path / "r.db") as st:
        with pytest.raises(sqlite3.Error):
            st.add([row(sample=0), row(sample=1, experiment=None)])  # NOT NULL fails on the second row
        assert st.count() == 0


def test_refuses_another_model_under_the_same_name_and_moved_samples(tmp_path):
    with Store(tmp_path / "r.db") as st:
        st.add([row(model_fingerprint="aaa", doc="book", offset=10)])
        st.check_model("m", "aaa")
        st.check_model("other", "bbb")
        with pytest.raises(PrototokError, match="use another --db"):
            st.check_model("m", "bbb")
        st.check_samples("s", {0: ("book", 10), 1: ("x", 0)})
        with pytest.raises(PrototokError, match="sample 0 of 's' was book@10"):
            st.check_samples("s", {0: ("book", 99)})


def test_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(PrototokError, match="not a usable results database"):
        Store(bad)


def test_commits_survive_sigkill(tmp_path):
    """A writer killed with SIGKILL between commits keeps every committed row and leaves a readable file."""
    db = tmp_path / "r.db"
    script = textwrap.dedent(f"""
        import sys, time
        from prototok.store import Row, Store
        st = Store({str(db)!r})
        for i in range(10**6):
            st.add([Row("capacity", "m", "s", i, 4, 0, "e m^(N-1)", "none", "paper")])
            if i == 20:
                print("ready", flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with Store(db) as st:
        samples = [r["sample"] for r in st.rows()]
    assert len(samples) >= 21 and samples == list(range(len(samples)))
