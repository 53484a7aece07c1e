"""The results store: one SQLite file, one row per fitted text, keyed by everything that produced it.

Each finished text (or shared-vector group) is committed in its own transaction, ignoring a row whose
UNIQUE key exists, so a run killed at any moment (Ctrl-C, `kill -9`) keeps every committed row, and a rerun
skips them instead of refitting or appending duplicates. WAL mode lets `prototok report` read while a run
writes. Proto-token files go in a folder beside the database (`<db stem>.protos/`), one file per commit,
and rows point into them by a path relative to the database's folder, so a results folder can be moved.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import PrototokError
from .protofile import ProtoTokens

if TYPE_CHECKING:
    import torch

SCHEMA_VERSION = 1

# What produced a row; a rerun with the same key skips it. The recipe is part of the key: a run with another
# learning rate or step cap is a different measurement, not a duplicate.
KEY = ("experiment", "model", "source", "sample", "length", "seed", "layout", "sharing", "recipe")


@dataclass
class Row:
    """One fitted text. Units: loss in nats/token (the fitter's), h_lm_bits in bits summed over the text."""

    experiment: str  # "capacity", "layouts", "sharing"
    model: str  # the name given to --model
    source: str  # data spec (with "@seed" when the data seed is not 0)
    sample: int  # index of the sample in load_samples(source, ...)
    length: int  # the grid length the text was cut at (a prefix of the sample); `tokens` says how many it has
    seed: int
    layout: str
    sharing: str  # "none", or "m/G" / "e/G": the vector shared by a group of G texts
    recipe: str  # recipe name plus overrides, e.g. "paper(lr=0.05,max_steps=300)"
    model_fingerprint: str = ""
    tokenizer_fingerprint: str = ""
    doc: str = ""  # provenance of the sample: which document, at which character offset
    offset: int = 0
    tokens_sha256: str = ""
    accuracy: float = 0.0  # the fitter's token accuracy of the kept solution
    solved: int = 0
    steps: int = 0
    loss: float = 0.0
    h_lm_bits: float | None = None  # the frozen model's own autoregressive cross-entropy of the text
    h_lm_context: str = ""  # what token 0 is predicted from: "bos" or "none" (then token 0 is not counted)
    fit_seconds: float = 0.0  # wall time the text spent in the fitter, with batch_size texts in flight
    batch_size: int = 0
    device: str = ""
    decode_seconds: float = 0.0  # one batched one-pass decode of the whole proto-token file
    decode_tokens: int = 0  # tokens that decode produced (all texts of the file)
    decode_accuracy: float = 0.0  # token accuracy of this text decoded back from its file
    proto_path: str = ""  # relative to the database's folder
    proto_index: int = 0  # the text's index inside that file
    version: str = ""
    created: float = 0.0  # unix time
    # greedy generation's token accuracy (cramming rows, layout "mem"; their `accuracy` is teacher-forced);
    # None for one-pass rows, whose decode is the fitter's own forward. Added after schema 1: see _migrate.
    gen_accuracy: float | None = None
    # forward+backward evaluations the text took part in (the work it cost, whatever the optimiser); None for
    # rows written before it was recorded. Added after schema 1: see _migrate.
    evals: int | None = None
    # tokens the frozen model predicts right by itself, teacher-forced, at the positions H_LM sums over
    # (hidden_capacity's original_accuracy x those positions); None for rows written before. See _migrate.
    lm_correct: int | None = None
    # tokens of the text fitted: `length`, unless the text is shorter than its grid length (a drawn length, a
    # short text fitted whole); None for rows written before it was recorded. See _migrate.
    tokens: int | None = None


_SQL_TYPES = {int: "INTEGER", float: "REAL", str: "TEXT", "int": "INTEGER", "float": "REAL", "str": "TEXT"}


def _column(f) -> str:
    base = str(f.type).split("|")[0].strip()
    sql = _SQL_TYPES.get(base, "TEXT")
    return f"{f.name} {sql}" + (" NOT NULL" if f.name in KEY else "")


_COLUMNS = [f.name for f in fields(Row)]
_CREATE = (
    "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, "
    + ", ".join(_column(f) for f in fields(Row))
    + f", UNIQUE ({', '.join(KEY)}))"
)
# ON CONFLICT (key) DO NOTHING, not INSERT OR IGNORE: the latter would also silently drop a row breaking NOT NULL
_INSERT = (
    f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    f"ON CONFLICT ({', '.join(KEY)}) DO NOTHING"
)


# The geometry experiment's measurements (distances, paths, vector reports): one JSON value per keyed row, in a
# table of its own beside `runs`, created on first use. The CREATE statement must stay byte-identical: merges
# copy it from rank files (sqlite_master keeps it), so a changed one would meet tables made by the old one.
GEOMETRY_KEY = ("model", "source", "recipe", "layout", "length", "kind", "item", "params")
_GEOMETRY_COLUMNS = (*GEOMETRY_KEY, "model_fingerprint")  # what Store.geometry may filter on
_GEOMETRY_CREATE = (
    "CREATE TABLE IF NOT EXISTS geometry (id INTEGER PRIMARY KEY, model TEXT NOT NULL, source TEXT NOT NULL, "
    "recipe TEXT NOT NULL, layout TEXT NOT NULL, length INTEGER NOT NULL, kind TEXT NOT NULL, item TEXT NOT NULL, "
    "params TEXT NOT NULL, model_fingerprint TEXT, value TEXT, created REAL, "
    f"UNIQUE ({', '.join(GEOMETRY_KEY)}))"
)
_GEOMETRY_INSERT = (
    f"INSERT INTO geometry ({', '.join(GEOMETRY_KEY)}, model_fingerprint, value, created) "
    f"VALUES ({', '.join('?' for _ in GEOMETRY_KEY)}, ?, ?, ?) ON CONFLICT ({', '.join(GEOMETRY_KEY)}) DO NOTHING"
)


def _quote(name: str) -> str:
    """An SQL identifier (table or column name) as a quoted literal: names read from another file are data."""
    return '"' + name.replace('"', '""') + '"'


def insert_many(db: sqlite3.Connection, sql: str, values: list[tuple]) -> int:
    """Run one INSERT for every tuple in a single transaction (all or none are committed, so a kill mid-way
    leaves no partial chunk); returns how many rows were new."""
    db.execute("BEGIN IMMEDIATE")
    try:
        before = db.total_changes
        db.executemany(sql, values)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return db.total_changes - before


def proto_dir_for(db: str | Path) -> Path:
    """The folder beside a database that holds its proto-token files: `<db stem>.protos/`."""
    db = Path(db)
    return db.parent / f"{db.stem}.protos"


class Store:
    """Open (creating if needed) a results database. Use as a context manager or call close().

    readonly=True opens an existing database for reading only (the report): nothing is created or migrated, and
    a database on a read-only filesystem can be read. A database that is neither empty nor ours (SQLite tables
    of something else, no `runs` table of our columns) is refused rather than adopted. Read-only, a database
    that does not exist or has no tables reads as an empty one, and nothing is created."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._absent: list[str] = []  # columns of Row a read-only, older database lacks (read as None)
        try:
            if readonly:
                self.db = self._connect_readonly()
            else:
                if str(path) != ":memory:":
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                # isolation_level=None: no implicit transactions; each add() is one explicit BEGIN ... COMMIT
                self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self._check_intact()  # before anything is written: a damaged database is left exactly as it was
            self._check_ours()
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise PrototokError(f"{self.path} has schema version {version}; this prototok reads {SCHEMA_VERSION}")
            if readonly:
                have = {r[1] for r in self.db.execute("PRAGMA table_info(runs)")}
                if not have:  # no database yet, or an empty one: no rows, read from an empty one in memory
                    self.db.close()
                    self.db = sqlite3.connect(":memory:", isolation_level=None)
                    self.db.row_factory = sqlite3.Row
                    self.db.execute(_CREATE)
                self._absent = [c for c in _COLUMNS if c not in have] if have else []
                return
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses no commit
            self.db.execute(_CREATE)
            self._migrate()
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as err:
            raise PrototokError(f"{self.path} is not a usable results database ({err})") from None
        except OSError as err:
            raise PrototokError(f"cannot create the results database {self.path}: {err.strerror or err}") from None

    def _connect_readonly(self) -> sqlite3.Connection:
        """Read without writing anything, not even SQLite's -wal/-shm files. With no -wal beside it the database
        is closed and whole: immutable=1 reads it as is (on a read-only filesystem too). With one (a run is
        writing, or one was killed), mode=ro reads its committed rows; immutable=1 when that cannot open (a
        read-only filesystem, where nobody can be writing)."""
        if not self.path.exists():
            return sqlite3.connect(":memory:", isolation_level=None)  # nothing stored yet; nothing is created
        if not self.path.is_file():
            raise PrototokError(f"{self.path} is not a regular file, not a results database")
        uri = self.path.resolve().as_uri()
        if not Path(f"{self.path}-wal").exists():
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60, isolation_level=None)
            db.execute("SELECT 1 FROM sqlite_master").fetchall()
            return db
        except sqlite3.OperationalError:
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)

    def _check_intact(self) -> None:
        """Refuse a damaged database (a valid header over a corrupt page) when it is opened, as one line, instead of
        a DatabaseError from whichever query first reads the bad page. SQLite's quick_check reads every page once
        (milliseconds for a results store)."""
        problems = [r[0] for r in self.db.execute("PRAGMA quick_check(1)")]
        if problems != ["ok"]:
            first = " ".join(problems[0].replace("*** in database main ***", "").split()) if problems else "no answer"
            raise PrototokError(f"{self.path} is a damaged SQLite database ({first}); use another --db")

    def _check_ours(self) -> None:
        """Refuse a foreign SQLite database: tables of something else, or a `runs` table without our key."""
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        tables = {t for t in tables if not t.startswith("sqlite_")}
        if not tables:
            return
        have = {r[1] for r in self.db.execute("PRAGMA table_info(runs)")} if "runs" in tables else set()
        if not set(KEY) <= have:
            shown = ", ".join(sorted(tables)[:5]) + (" ..." if len(tables) > 5 else "")
            raise PrototokError(
                f"{self.path} is an SQLite database of something else (tables: {shown}), not prototok results; "
                "use another --db"
            )

    def proto_file(self, rel: str) -> Path:
        """The proto-token file a row points at (its `proto_path`), refused unless it lies inside proto_dir: a
        path read from a database must not open files elsewhere."""
        root = self.proto_dir.resolve()
        path = (self.path.parent / rel).resolve()
        if not path.is_relative_to(root):
            raise PrototokError(f"{self.path}: a row points at {rel}, outside {self.proto_dir}")
        return path

    def solution(self, row: dict, files: dict[str, ProtoTokens] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A row's own (e, m): the texts of one fit share a file (`files` caches them by path) and a shared m is
        stored once for all of them."""
        files = {} if files is None else files
        if row["proto_path"] not in files:
            files[row["proto_path"]] = ProtoTokens.load(self.proto_file(row["proto_path"]))
        proto, i = files[row["proto_path"]], row["proto_index"]
        return proto.e[i], proto.m[min(i, proto.m.shape[0] - 1)]

    def _migrate(self) -> None:
        """Columns added to Row since a database was created are added to it, empty (NULL): an old database
        stays readable and writable, and older prototoks still read a migrated one (they name their columns)."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(runs)")}
        for f in fields(Row):
            if f.name not in have:
                self.db.execute(f"ALTER TABLE runs ADD COLUMN {_column(f)}")

    @property
    def proto_dir(self) -> Path:
        return proto_dir_for(self.path)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def add(self, rows: list[Row]) -> int:
        """Commit rows in one transaction; rows whose key exists are ignored. Returns how many were new."""
        now = time.time()
        values = [tuple((now if c == "created" and not v else v) for c, v in asdict(r).items()) for r in rows]
        return insert_many(self.db, _INSERT, values)

    def rows(self, **where) -> list[dict]:
        """All rows matching column=value filters, in insertion order."""
        bad = set(where) - set(_COLUMNS)
        if bad:
            raise ValueError(f"unknown column(s) {sorted(bad)}; columns: {', '.join(_COLUMNS)}")
        clause = " AND ".join(f"{k} = ?" for k in where)
        sql = "SELECT * FROM runs" + (f" WHERE {clause}" if clause else "") + " ORDER BY id"
        absent = dict.fromkeys(self._absent)
        return [dict(r) | absent for r in self.db.execute(sql, tuple(where.values()))]

    def done(self, **where) -> set[tuple]:
        """Keys (as tuples in KEY order) of the rows matching the filters."""
        return {tuple(r[k] for k in KEY) for r in self.rows(**where)}

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def add_geometry(self, rows: list[tuple]) -> int:
        """Commit geometry measurements in one transaction, new keys only; returns how many were new.
        rows: (model, source, recipe, layout, length, kind, item, params, model fingerprint, value dict)."""
        self.db.execute(_GEOMETRY_CREATE)
        now = time.time()
        values = [(*r[:-1], json.dumps(r[-1], sort_keys=True), now) for r in rows]
        return insert_many(self.db, _GEOMETRY_INSERT, values)

    def geometry(self, **where) -> list[dict]:
        """Geometry rows matching column=value filters, in insertion order, `value` parsed; [] when the
        database has no geometry table (nothing measured yet)."""
        bad = set(where) - set(_GEOMETRY_COLUMNS)
        if bad:
            raise ValueError(f"unknown geometry column(s) {sorted(bad)}; columns: {', '.join(_GEOMETRY_COLUMNS)}")
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'geometry'").fetchone():
            return []
        clause = " AND ".join(f"{k} = ?" for k in where)
        sql = "SELECT * FROM geometry" + (f" WHERE {clause}" if clause else "") + " ORDER BY id"
        return [dict(r) | {"value": json.loads(r["value"])} for r in self.db.execute(sql, tuple(where.values()))]

    TABLES = ("runs", "geometry")

    def export(self, table: str) -> tuple[list[str], list[dict]]:
        """(column names, rows) of one table as stored, for `prototok export`: every column, in insertion order;
        geometry's `value` stays its JSON text. A table not created yet exports as its columns and no rows."""
        if table == "runs":
            return ["id", *_COLUMNS], self.rows()
        if table == "geometry":
            cols = ["id", *GEOMETRY_KEY, "model_fingerprint", "value", "created"]
            if not self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'geometry'").fetchone():
                return cols, []
            return cols, [dict(r) for r in self.db.execute("SELECT * FROM geometry ORDER BY id")]
        raise PrototokError(f"unknown table '{table}': use one of {', '.join(self.TABLES)}")

    def check_model(self, model: str, fingerprint: str) -> None:
        """A model name must keep meaning the same weights, else old rows would mix with new ones."""
        found = {r[0] for r in self.db.execute("SELECT DISTINCT model_fingerprint FROM runs WHERE model = ?", (model,))}
        if found and fingerprint not in found:
            raise PrototokError(
                f"{self.path} holds results for model '{model}' with fingerprint {sorted(found)[0][:12]}, "
                f"but '{model}' now loads as {fingerprint[:12]}; use another --db"
            )

    def check_samples(self, source: str, provenance: dict[int, tuple[str, int]]) -> None:
        """Sample i of a source must still be the same document and offset, else keys would lie."""
        sql = "SELECT DISTINCT sample, doc, offset FROM runs WHERE source = ?"
        for sample, doc, offset in self.db.execute(sql, (source,)):
            if sample in provenance and provenance[sample] != (doc, offset):
                now = provenance[sample]
                raise PrototokError(
                    f"{self.path}: sample {sample} of '{source}' was {doc}@{offset} but is now {now[0]}@{now[1]} "
                    "(another --samples, --min-chars or data version?); use another --db"
                )


def merge_into(dest: Store, src: Store) -> int:
    """Copy src's rows into dest (creation times kept); keys dest has are skipped, so a merge repeated after a
    crash adds nothing twice. Other tables kept beside `runs` (the geometry table) are copied too, each created
    in dest from src's own schema. Returns how many rows were new."""
    new = dest.add([Row(**{c: r[c] for c in _COLUMNS}) for r in src.rows()])
    tables = "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name != 'runs' AND name NOT LIKE 'sqlite_%'"
    for name, sql in src.db.execute(tables).fetchall():
        new += _copy_table(dest, src, name, sql)
    return new


def _copy_table(dest: Store, src: Store, name: str, sql: str) -> int:
    """Rows of one keyed table (an `id` primary key and a UNIQUE key), new keys only, in one transaction."""
    if not dest.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone():
        dest.db.execute(sql)  # sqlite_master keeps the CREATE statement that made the table
    table = _quote(name)
    have = {r[1] for r in dest.db.execute(f"PRAGMA table_info({table})")}
    cols = [r[1] for r in src.db.execute(f"PRAGMA table_info({table})") if r[1] != "id" and r[1] in have]
    names = ", ".join(_quote(c) for c in cols)
    values = src.db.execute(f"SELECT {names} FROM {table} ORDER BY rowid").fetchall()
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in cols)}) ON CONFLICT DO NOTHING"
    return insert_many(dest.db, insert, [tuple(v) for v in values])
