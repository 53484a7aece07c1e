"""One result schema (prototok.schema): `encode --json` and `decode --json` print the same document with the same
names for the same things, `encode --db` adds its texts to a results store as the experiments add theirs, and
`export` gives ISO 8601 times, with .json a JSON array."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import fields
from datetime import datetime

import pytest
from click.testing import CliRunner

from prototok.cli import main
from prototok.recipes import Recipe
from prototok.schema import SCHEMA
from prototok.store import KEY, Row, Store

TEXTS = ["the cat sat on the mat", "bird sang"]
FIT = ["--recipe", "paper", "--lr", "0.1", "--steps", "300"]
TEXT_ONLY = {"index", "token_ids", "text", "text_sha256"}  # a text's fields that are not store columns


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def utc(stamp: str) -> datetime:
    """An ISO 8601 time in UTC as the schema writes it: '2026-12-01T09:30:12.345Z'."""
    assert isinstance(stamp, str) and stamp.endswith("Z"), stamp
    when = datetime.fromisoformat(stamp)
    assert when.utcoffset().total_seconds() == 0
    return when


@pytest.fixture(scope="module")
def encoded(tiny_dir, tmp_path_factory):
    """Two texts (an argument and a file) encoded with --json and --db."""
    tmp = tmp_path_factory.mktemp("schema")
    (tmp / "t.txt").write_text(TEXTS[1])
    r = cli("encode", TEXTS[0], "--file", tmp / "t.txt", "--model", tiny_dir, *FIT, "-o", tmp / "p.safetensors",
            "--db", tmp / "r.db", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout), tmp


def test_encode_and_decode_print_one_document(encoded, tiny_dir):
    enc, tmp = encoded
    r = cli(
        "decode", tmp / "p.safetensors", "--model", tiny_dir, "--json", *(x for t in TEXTS for x in ("--reference", t))
    )
    assert r.exit_code == 0, r.output
    dec = json.loads(r.stdout)
    for doc, command in ((enc, "encode"), (dec, "decode")):
        assert doc["schema"] == SCHEMA and doc["command"] == command
        utc(doc["created"])
        assert doc["versions"]["prototok"] and doc["versions"]["torch"]
        assert doc["recipe"] == "paper(lr=0.1,max_steps=300)" and doc["layout"] == "e m^(N-1)"
        assert doc["sharing"] == "none" and doc["file"] == str(tmp / "p.safetensors")
        assert [t["index"] for t in doc["texts"]] == [0, 1]
    assert set(dec) == set(enc) - {"db", "proto_path", "rows_added"}
    assert {k: enc[k] for k in ("model", "model_fingerprint", "seed")} == {
        k: dec[k] for k in ("model", "model_fingerprint", "seed")
    }
    for e, d in zip(enc["texts"], dec["texts"]):  # both texts reconstructed: every shared field agrees
        assert set(d) <= set(e)
        assert {k: e[k] for k in d} == d
        assert e["text"] in TEXTS and e["length"] == len(e["token_ids"]) and e["solved"] == 1


def test_a_text_uses_the_store_column_names(encoded):
    enc, _ = encoded
    columns = {f.name for f in fields(Row)}
    for text in enc["texts"]:
        assert set(text) - TEXT_ONLY <= columns, set(text) - TEXT_ONLY - columns


def test_encode_db_adds_rows_keyed_like_the_experiments(encoded, tiny_dir):
    enc, tmp = encoded
    db = tmp / "r.db"
    with Store(db, readonly=True) as store:
        rows = store.rows()
        assert [r["sample"] for r in rows] == [0, 1]
        assert {r["experiment"] for r in rows} == {"encode"} and rows[0]["source"].startswith("encode:")
        assert [r["doc"] for r in rows] == ["argument", str(tmp / "t.txt")]
        assert [r["length"] for r in rows] == [r["tokens"] for r in rows] == [t["length"] for t in enc["texts"]]
        assert [r["recipe"] for r in rows] == [enc["recipe"]] * 2 and all(r["decode_accuracy"] == 1.0 for r in rows)
        assert {r["proto_path"] for r in rows} == {enc["proto_path"]} and enc["rows_added"] == 2
        assert all(store.solution(r)[0].shape[-1] > 0 for r in rows)  # the copy lies inside the store's folder
    copy = tmp / enc["proto_path"]
    assert copy.parent == tmp / "r.protos" / "encode"
    run = json.loads(copy.with_suffix(".json").read_text())  # the run's document, beside its file
    assert run["texts"] == enc["texts"] and run["config"]["recipe"]["lr"] == 0.1
    r = cli("decode", copy, "--model", tiny_dir)
    assert r.exit_code == 0 and r.stdout.splitlines() == TEXTS

    again = cli("encode", TEXTS[0], "--file", tmp / "t.txt", "--model", tiny_dir, *FIT, "-o", tmp / "q.safetensors",
                "--db", db, "--json")  # fmt: skip
    assert again.exit_code == 0 and json.loads(again.stdout)["rows_added"] == 0  # same key: nothing twice
    other = cli("encode", TEXTS[1], "--model", tiny_dir, *FIT, "--seed", "3", "-o", tmp / "q.safetensors", "--db", db)
    assert other.exit_code == 0 and "added 1 of 1 rows" in other.stdout
    with Store(db, readonly=True) as store:
        keys = [tuple(r[k] for k in KEY) for r in store.rows()]
    assert len(keys) == 3 == len(set(keys))
    assert cli("report", "--db", db, "-o", tmp / "report").exit_code == 0  # the report reads encode rows too


def test_export_json_is_an_array_with_iso_times(encoded, tmp_path):
    import pandas

    _, tmp = encoded
    db = tmp / "r.db"
    r = cli("export", "--db", db, "-o", tmp_path / "runs.json")
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "runs.json").read_text())
    assert isinstance(rows, list) and rows and all(utc(row["created"]) for row in rows)
    assert len(pandas.read_json(tmp_path / "runs.json")) == len(rows)
    lines = cli("export", "--db", db, "-o", tmp_path / "runs.jsonl")
    assert lines.exit_code == 0
    assert [json.loads(x) for x in (tmp_path / "runs.jsonl").read_text().splitlines()] == rows
    assert json.loads(cli("export", "--db", db, "--format", "json").stdout) == rows
    assert json.loads(cli("export", "--db", db, "--table", "geometry", "--format", "json").stdout) == []
    table = list(csv.DictReader(cli("export", "--db", db).stdout.splitlines()))
    assert [row["created"] for row in table] == [row["created"] for row in rows]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_recipe_refuses_non_finite_numbers_in_every_float_field(value):
    floats = [f.name for f in fields(Recipe) if f.type == "float"]
    assert {"lr", "e_scale", "weight_decay", "eps", "init_scale", "min_lr_ratio", "lbfgs_lr", "focal_gamma"} <= set(
        floats
    )
    for name in floats:
        with pytest.raises(ValueError, match=f"Recipe.{name} must be a finite number"):
            Recipe(**{name: value})
    with pytest.raises(ValueError, match="Recipe.betas must be a finite number"):
        Recipe(betas=(0.9, value))
