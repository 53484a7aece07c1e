"""The results store: one row per key, atomic commits, refusals of stale or foreign databases."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from prototok.errors import PrototokError
from prototok.store import KEY, Row, Store, merge_into


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


def test_a_damaged_database_is_refused_on_opening_and_left_as_it_was(tmp_path):
    """A valid header over a garbage page: refused as one PrototokError when opened, for reading (report, export)
    and for writing (an experiment), before anything is written: not even SQLite's change counter moves."""
    db = tmp_path / "r.db"
    with Store(db) as st:
        st.add([row(sample=i, doc="x" * 3000) for i in range(40)])
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    data = bytearray(db.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    data[4 * size : 4 * size + 64] = b"\xab" * 64  # page 5 of the runs table
    db.write_bytes(bytes(data))
    for readonly in (True, False):
        with pytest.raises(PrototokError, match="damaged SQLite database"):
            Store(db, readonly=readonly)
        assert db.read_bytes() == bytes(data) and sorted(p.name for p in tmp_path.iterdir()) == ["r.db"]


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


def geo(item="s0/seed0-seed1", kind="path", length=4, value=None):
    return ("m", "s", "paper", "e m^(N-1)", length, kind, item, "", "fp", value or {"item": item})


def test_geometry_rows_are_keyed_filtered_and_parsed(tmp_path):
    with Store(tmp_path / "r.db") as st:
        assert st.geometry() == [] and st.geometry(kind="path") == []  # no table yet: nothing measured
        assert st.add_geometry([geo("a"), geo("b", kind="distance", length=6)]) == 2
        assert st.add_geometry([geo("a", value={"other": 1}), geo("c")]) == 1  # "a" exists: the first one wins
        assert [r["value"] for r in st.geometry()] == [{"item": "a"}, {"item": "b"}, {"item": "c"}]
        assert [r["item"] for r in st.geometry(kind="path", length=4)] == ["a", "c"]
        assert st.geometry(model_fingerprint="fp")[0]["created"] > 0
        with pytest.raises(ValueError, match="unknown geometry column"):
            st.geometry(value="x")


def test_geometry_schema_is_the_one_older_databases_hold(tmp_path):
    """Merges copy a table by the CREATE statement sqlite_master keeps: it must not drift between versions."""
    with Store(tmp_path / "r.db") as st:
        st.add_geometry([geo()])
        (sql,) = st.db.execute("SELECT sql FROM sqlite_master WHERE name = 'geometry'").fetchone()
    assert sql == (
        "CREATE TABLE geometry (id INTEGER PRIMARY KEY, model TEXT NOT NULL, source TEXT NOT NULL, "
        "recipe TEXT NOT NULL, layout TEXT NOT NULL, length INTEGER NOT NULL, kind TEXT NOT NULL, item TEXT NOT NULL, "
        "params TEXT NOT NULL, model_fingerprint TEXT, value TEXT, created REAL, "
        "UNIQUE (model, source, recipe, layout, length, kind, item, params))"
    )


def test_merge_quotes_the_names_it_reads_from_another_file(tmp_path):
    """Table and column names come from the source file: a `"` in one must not end the identifier early."""
    with Store(tmp_path / "src.db") as src, Store(tmp_path / "dest.db") as dest:
        src.db.execute('CREATE TABLE "we""ird" (id INTEGER PRIMARY KEY, "k""ey" TEXT, "v" TEXT, UNIQUE ("k""ey"))')
        src.db.execute('INSERT INTO "we""ird" ("k""ey", v) VALUES (?, ?), (?, ?)', ("a", "1", "b", "2"))
        assert merge_into(dest, src) == 2 and merge_into(dest, src) == 0
        got = dest.db.execute('SELECT "k""ey", v FROM "we""ird" ORDER BY id').fetchall()
        assert [tuple(r) for r in got] == [("a", "1"), ("b", "2")]
