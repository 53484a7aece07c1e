"""Text sources: local files, Hub (offline), wiki/austen/random corpora, model generations; cutting and provenance."""

from __future__ import annotations

import json
import os
import sys
import types

import pytest

from prototok.errors import PrototokError
from prototok.sources import Documents, Sample, load_samples, truncate
from prototok.sources.corpora import from_austen, from_wiki
from prototok.sources.random_words import english_words
from prototok.sources.windows import cut, sentence_starts

from .conftest import WORDS, tiny_tokenizer

PARA = (
    "It was a quiet morning in the valley. Mr. Hale walked to the mill by the river. The water was cold and clear! "
    "Did the children play near the old tree? They did, until the evening came. "
)


def doc_text(i: int, sentences: int = 40) -> str:
    return f"Document {i} begins here. " + "".join(f"Line {i}.{k} of the story goes on. " for k in range(sentences))


def check_provenance(sample: Sample, docs: dict[str, str]) -> None:
    doc = docs[sample.doc]
    assert sample.offset > 0  # the first sentence is skipped
    assert doc[sample.offset :].startswith(sample.text)
    assert doc[sample.offset - 2 : sample.offset].isspace() or doc[sample.offset - 1] == " "


def corpus(name: str) -> Documents:
    """An offline corpus, skipped only outside CI when its package/deb cannot be installed here."""
    try:
        return {"wiki": from_wiki, "austen": from_austen}[name]()
    except PrototokError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))


# ------------------------------------------------------------------------------------------------ cutting


def test_sentence_starts_skip_abbreviations():
    text = 'Mr. Smith went home. He ran to J. Doe! Then? "Yes," said she.\n\nnew paragraph here.'
    starts = sentence_starts(text)
    assert [text[s : s + 4] for s in starts] == ["He r", "Then", '"Yes', "new "]


def test_cut_windows_are_long_enough_and_disjoint():
    text = PARA * 20
    windows = list(cut(text, 300))
    assert len(windows) > 3
    for (off, t), (nxt, _) in zip(windows, windows[1:], strict=False):
        assert len(t) >= 300 and text[off:].startswith(t) and off + len(t) <= nxt
    assert windows[0][0] == text.index("Mr. Hale")  # skipped the first sentence, not split at "Mr."


# -------------------------------------------------------------------------------------------------- files


def test_txt_file_and_bare_path(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(PARA * 30)
    samples = load_samples(str(path), 3, min_chars=400)
    assert len(samples) == 3
    assert all(s.source == f"file:{path.resolve()}" and s.doc == "a.txt" and len(s.text) >= 400 for s in samples)
    for s in samples:
        check_provenance(s, {"a.txt": path.read_text()})
    assert load_samples(f"file:{path}", 3, min_chars=400) == samples


def test_folder_of_txt(tmp_path):
    docs = {}
    for i in range(5):
        rel = f"sub/d{i}.txt" if i % 2 else f"d{i}.txt"
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text(doc_text(i))
        docs[rel] = doc_text(i)
    (tmp_path / "ignored.md").write_text(doc_text(9))
    samples = load_samples(str(tmp_path), 100, min_chars=300)
    assert {s.doc for s in samples} == set(docs)
    assert len(samples) == len({(s.doc, s.offset) for s in samples})  # no window twice
    for s in samples:
        check_provenance(s, docs)


def test_jsonl(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"text": doc_text(i, 8), "id": i} for i in range(6)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    samples = load_samples(str(path), 4, min_chars=200, seed=3)
    assert len(samples) == 4
    for s in samples:
        check_provenance(s, {str(i): r["text"] for i, r in enumerate(rows)})


def test_determinism_and_seed(tmp_path):
    for i in range(8):
        (tmp_path / f"d{i}.txt").write_text(doc_text(i))
    a = load_samples(str(tmp_path), 5, seed=7, min_chars=300)
    assert load_samples(str(tmp_path), 5, seed=7, min_chars=300) == a
    assert load_samples(str(tmp_path), 5, seed=8, min_chars=300) != a


def test_fewer_than_asked_returns_what_exists(tmp_path):
    (tmp_path / "a.txt").write_text(doc_text(0, 10))
    samples = load_samples(str(tmp_path / "a.txt"), 50, min_chars=100)
    assert 1 <= len(samples) < 50


@pytest.mark.parametrize(
    "setup, spec, match",
    [
        (None, "{tmp}/missing.txt", "no such file"),
        (None, "{tmp}", "no .txt files"),
        ({"r.jsonl": '{"body": "x"}\n'}, "{tmp}/r.jsonl", "no string field 'text'"),
        ({"r.jsonl": "not json\n"}, "{tmp}/r.jsonl", "line 1 is not JSON"),
        ({"b.txt": b"\xff\xfe\x00bad"}, "{tmp}/b.txt", "cannot read"),
        ({"s.txt": "Too short. Really."}, "{tmp}/s.txt", "no text of 400\\+ characters"),
        (None, "nonsense", "unknown data source 'nonsense': use one of PATH, file:..., hf:..., wiki, austen"),
        (None, "generated:", "unknown data source"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path, setup, spec, match):
    for name, content in (setup or {}).items():
        p = tmp_path / name
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    with pytest.raises(PrototokError, match=match) as err:
        load_samples(spec.format(tmp=tmp_path), 2, min_chars=400)
    assert "\n" not in str(err.value)


def test_truncate():
    tok = tiny_tokenizer()
    s = Sample("x", "d", 0, " ".join(WORDS))
    ids = truncate(tok, s, 10)
    assert ids == tok(" ".join(WORDS), add_special_tokens=False)["input_ids"][:10]
    assert truncate(tok, s, len(WORDS) + 1) is None


# ---------------------------------------------------------------------------------------------------- hub


def test_hf_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        import datasets  # noqa: F401  # the real library when installed: it must fail offline too
    except ImportError:

        def load_dataset(name, split):
            raise ConnectionError(f"Couldn't reach '{name}' on the Hub (LocalEntryNotFoundError)\nmore")

        monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(PrototokError, match="cannot load Hub dataset 'yurakuratov/pg19_valid_1k_chunks'") as err:
        load_samples("hf:yurakuratov/pg19_valid_1k_chunks", 2)
    assert "HF_HUB_OFFLINE" in str(err.value) and "\n" not in str(err.value)


def test_hf_without_datasets_library(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails
    with pytest.raises(PrototokError, match=r"needs the datasets library: pip install 'prototok\[hf\]'"):
        load_samples("hf:yurakuratov/fanfics_1k_chunks", 2)


def test_hf_rows_and_split(monkeypatch):
    rows = [doc_text(i, 8) for i in range(4)]
    calls = []

    class Rows:  # the slice of datasets.Dataset that from_hub uses
        column_names = ["text"]

        def __getitem__(self, column):
            return rows

    def load_dataset(name, split):
        calls.append((name, split))
        return Rows()

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    samples = load_samples("hf:someone/chunks:test", 3, min_chars=200)
    assert calls == [("someone/chunks", "test")] and samples[0].source == "hf:someone/chunks:test"
    for s in samples:
        check_provenance(s, {str(i): t for i, t in enumerate(rows)})
    load_samples("hf:someone/chunks", 1, min_chars=200)
    assert calls[-1] == ("someone/chunks", "train")


# ------------------------------------------------------------------------------------------ offline corpora


@pytest.mark.parametrize("name", ["wiki", "austen"])
def test_offline_corpus_loads_with_provenance(name):
    docs = dict(corpus(name))
    assert len(docs) >= 6 and sum(map(len, docs.values())) > 2_000_000
    samples = load_samples(name, 5, seed=1)
    assert len(samples) == 5 and samples == load_samples(name, 5, seed=1)
    for s in samples:
        assert s.source == name and len(s.text) >= 2000
        check_provenance(s, docs)


def test_austen_is_prose_not_headings():
    books = dict(corpus("austen"))
    assert sorted(books) == "emma mansfieldpark northangerabbey persuasion prideprejudice sensesensibility".split()
    assert books["prideprejudice"].startswith("It is a truth universally acknowledged")
    assert "CHAPTER" not in books["emma"][:5000]


def test_random_words():
    try:
        words = set(english_words())
    except PrototokError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))
    assert len(words) > 30_000 and {"house", "river", "quiet"} <= words
    samples = load_samples("random", 3, seed=5, min_chars=500)
    assert samples == load_samples("random", 3, seed=5, min_chars=500)
    assert [s.doc for s in samples] == ["5:0", "5:1", "5:2"] and len({s.text for s in samples}) == 3
    assert all(len(s.text) >= 500 and set(s.text.split()) <= words for s in samples)
    assert load_samples("random", 3, seed=6, min_chars=500)[0].text != samples[0].text


# ---------------------------------------------------------------------------------------------- generated


def test_generated_needs_a_model(tmp_path):
    (tmp_path / "a.txt").write_text(PARA * 10)
    with pytest.raises(PrototokError, match="needs a model"):
        load_samples(f"generated:{tmp_path / 'a.txt'}", 1)


def test_generated_is_deterministic_per_seed(tiny, tmp_path):
    path = tmp_path / "ctx.txt"
    text = " ".join(" ".join(WORDS[i : i + 7]).capitalize() + "." for i in range(len(WORDS) - 7))
    path.write_text(text)
    spec = f"generated:{path}"
    a = load_samples(spec, 2, seed=0, min_chars=60, lm=tiny)
    assert len(a) == 2 and a == load_samples(spec, 2, seed=0, min_chars=60, lm=tiny)
    assert a != load_samples(spec, 2, seed=1, min_chars=60, lm=tiny)
    for s in a:  # provenance is the context's: a sentence start in the file
        assert s.source == f"generated:file:{path.resolve()}" and s.doc == "ctx.txt"
        assert s.offset in sentence_starts(text)
        assert s.text and len(tiny.tokenizer(s.text, add_special_tokens=False)["input_ids"]) <= tiny.max_positions
