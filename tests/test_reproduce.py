"""`prototok reproduce` (the paper's settings, printed, run through the experiments)
and the papers' data: GloVe random texts (packaged) and hidden_capacity's second-half cut."""

import sys
import tomllib
import types
from pathlib import Path

from click.testing import CliRunner

from prototok.cli import main
from prototok.experiments.presets import PAPER_DATA, PRESETS, paper_dtype
from prototok.sources import check_spec, load_samples, truncate, with_text_field
from prototok.sources.random_words import glove_words
from prototok.sources.second_half import punkt_sentences, second_half
from prototok.sources.windows import sentence_starts

from .conftest import write_docs

ROOT = Path(__file__).resolve().parents[1]


def chunk(i: int, sentences: int) -> str:
    return " ".join(f"Chunk {i} sentence {k} goes  on." for k in range(sentences))


# ---------------------------------------------------------------------------------------------- second half


def test_second_half_is_hidden_capacitys_cut():
    # 5 sentences: train.py keeps sentences[5 // 2:], joined by single spaces (whitespace normalised first)
    text = "One here. Two is  here.\n\nThree now. Four now. Five ok."
    offset, rest = second_half(text)
    assert rest == "Three now. Four now. Five ok."
    assert " ".join(text.split())[offset:] == rest
    assert second_half("Only one sentence") == (0, "Only one sentence")  # sentences[0:]: all of it
    assert second_half("   ") is None


def test_second_half_splits_sentences_as_punkt_does():
    # punkt (nltk's sent_tokenize, which hidden_capacity calls) keeps "Jan. 1990" together; prototok's own
    # rule-based splitter (`sentence_starts`) cuts it, which would move the second half by one sentence
    text = "He was born in Jan. 1990. He grew up. He moved away. He came back."
    assert punkt_sentences(text) == ["He was born in Jan. 1990.", "He grew up.", "He moved away.", "He came back."]
    assert len(sentence_starts(text)) + 1 == 5
    offset, rest = second_half(text)
    assert rest == "He moved away. He came back." and text[offset:] == rest


def test_second_half_of_local_files_in_document_order(tmp_path):
    for i in range(3):
        (tmp_path / f"c{i}.txt").write_text(chunk(i, 7))
    samples = load_samples(f"second-half:{tmp_path}", 2, min_chars=10**6)  # min_chars does not filter
    assert [s.doc for s in samples] == ["c0.txt", "c1.txt"]  # df['text'][:num_samples]: the first n, in order
    assert samples[0].source == f"second-half:file:{tmp_path.resolve()}"
    assert samples[0].text.startswith("Chunk 0 sentence 3 goes on.") and samples[0].text.endswith("sentence 6 goes on.")
    other = load_samples(f"second-half:{tmp_path}", 3, seed=1, min_chars=10)
    assert sorted(s.doc for s in other) == ["c0.txt", "c1.txt", "c2.txt"]


def test_second_half_of_a_mocked_hub_dataset(monkeypatch):
    rows = [chunk(i, 10) for i in range(4)]

    class Rows:
        column_names = ["text"]

        def __getitem__(self, column):
            return rows

    calls = []

    def load_dataset(name, split):
        calls.append((name, split))
        return Rows()

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    spec = "second-half:hf:yurakuratov/pg19_valid_1k_chunks"
    check_spec(spec)
    samples = load_samples(spec, 3)
    assert calls == [("yurakuratov/pg19_valid_1k_chunks", "train")]
    assert [s.doc for s in samples] == ["0", "1", "2"]
    assert all(s.source == "second-half:hf:yurakuratov/pg19_valid_1k_chunks" for s in samples)
    assert samples[1].text == " ".join(f"Chunk 1 sentence {k} goes on." for k in range(5, 10))
    assert with_text_field(spec, "body") == spec + "#body"


def test_second_half_refuses_a_source_without_documents():
    import pytest

    from prototok.errors import PrototokError

    with pytest.raises(PrototokError, match="needs a document source"):
        check_spec("second-half:random-glove")


# ---------------------------------------------------------------------------------------------- random-glove


def test_glove_vocabulary_is_packaged_with_its_attribution():
    words = glove_words()
    assert len(words) == 100_000 and words[:3] == ["the", ",", "."]
    folder = ROOT / "src/prototok/data_files"
    assert "PDDL" in (folder / "README.md").read_text()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"data_files/*.txt", "data_files/README.md"} <= set(package_data["prototok"])


def test_random_glove_draws_from_the_glove_list_per_sample():
    vocab = set(glove_words())
    a = load_samples("random-glove", 3, seed=2, min_chars=300)
    b = load_samples("random-glove", 1, seed=2, min_chars=300)
    assert a[0] == b[0]  # sample i does not depend on how many are drawn
    assert [s.doc for s in a] == ["2:0", "2:1", "2:2"] and {s.source for s in a} == {"random-glove"}
    assert all(len(s.text) >= 300 and set(s.text.split(" ")) <= vocab for s in a)
    assert a[0].text != a[1].text
    assert load_samples("random", 1, min_chars=50)[0].source == "random"  # the old source keeps its name


# ---------------------------------------------------------------------------------------------- presets


def test_presets_hold_the_papers_settings():
    t1, t2, t3 = PRESETS["table1"], PRESETS["table2"], PRESETS["table3"]
    assert t1.samples == 50 and t1.config.lengths[:3] == (1, 2, 4) and len(t1.config.layouts) == 5
    assert t2.samples == 256 and t2.config.lengths == (256,) and t2.config.groups == (1, 4, 16, 64, 256)
    assert t2.config.seeds == tuple(range(10)) and t2.config.layout == "e m^(N-1)"
    assert t3.samples == 50 and t3.config.lengths[-1] == 1448 and t3.config.layout == "e m^(N-1)"
    assert paper_dtype("EleutherAI/pythia-160m", "cuda") == "float32"
    assert paper_dtype("meta-llama/Meta-Llama-3.1-8B", "cuda") == "bfloat16"
    assert paper_dtype("meta-llama/Llama-3.2-1B", "cpu") == "float32"
    assert paper_dtype("smollm2-135m", "cuda") is None
    assert PAPER_DATA == ("second-half:hf:yurakuratov/pg19_valid_1k_chunks",)


def test_reproduce_dry_run_prints_every_fixed_value(tiny_dir, tmp_path):
    (tmp_path / "docs").mkdir()
    docs = write_docs(tmp_path / "docs", seed=3)
    db = tmp_path / "r.db"
    args = ["reproduce", "table2", "--model", str(tiny_dir), "--data", f"second-half:{docs}", "--db", str(db)]
    res = CliRunner().invoke(main, [*args, "--dry-run"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = res.output
    for expected in [
        "experiment: sharing",
        "recipe: paper",
        "samples per data source: 256",
        "lengths: 256",
        "seeds: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9",
        "layout: e m^(N-1)",
        "groups: 1, 4, 16, 64, 256; shared vector: m, e",
        "precision: auto",
        "sharing (Table 2)",
        "recipe paper",
    ]:
        assert expected in out, expected
    assert not db.exists()  # a dry run creates no database


def test_random_glove_drawn_gives_each_grid_length_its_own_text_of_a_drawn_length(tiny):
    """hidden_capacity's --shuffled: at grid value L, sample i fits 5 x L GloVe words cut to randint(2, L)."""
    tok = tiny.tokenizer
    samples = load_samples("random-glove-drawn", 6, seed=1)
    assert [s.doc for s in samples[:2]] == ["1:0", "1:1"] and all(s.draws for s in samples)
    assert load_samples("random-glove-drawn", 1, seed=1)[0] == samples[0]  # independent of n
    drawn = {(i, L): truncate(tok, s, L) for i, s in enumerate(samples) for L in (8, 32)}
    assert all(2 <= len(t) <= L for (_, L), t in drawn.items())
    assert len({len(t) for (_, L), t in drawn.items() if L == 32}) > 1  # lengths are drawn, not fixed
    assert drawn[(0, 8)] != drawn[(0, 32)][:8]  # each length its own text, not a prefix
    assert truncate(tok, samples[0], 8) == drawn[(0, 8)]  # the same text every time
    assert drawn[(0, 8)] != drawn[(1, 8)]


def test_capacity_on_drawn_lengths_keys_rows_by_the_grid_value(tiny, tmp_path):
    import pytest

    import prototok.experiments.runner as ex
    import prototok.experiments.texts as tx
    import prototok.methods as methods
    from prototok.errors import PrototokError
    from prototok.experiments.capacity import CapacityConfig, run_capacity
    from prototok.protofile import ProtoTokens
    from prototok.recipes import get_recipe
    from prototok.store import Store

    source, samples = tx.load("random-glove-drawn", 3, tiny, data_seed=4)
    assert source == "random-glove-drawn@seed=4"
    texts = tx.prefixes(tiny, samples, [4, 8])
    recipe = get_recipe("paper", lr=0.1, max_steps=40)
    store = Store(tmp_path / "r.db")
    run = ex.Run(tiny, store, "capacity", "tiny", source, methods.OnePass(recipe), 3)
    run_capacity(run, texts, CapacityConfig((4, 8), threshold=0.01))
    rows = run.rows()
    assert sorted({r["length"] for r in rows}) == [4, 8] and len(rows) == 6
    for r in rows:
        tokens = texts[r["sample"]].tokens[r["length"]]
        proto = ProtoTokens.load(tmp_path / r["proto_path"])
        assert proto.lengths[r["proto_index"]] == len(tokens) <= r["length"]  # the drawn text, keyed by L
        assert r["tokens_sha256"] == tx.tokens_sha256(tokens)
        assert r["h_lm_bits"] == pytest.approx(tx.h_lm_bits(tiny, tokens)[0][len(tokens) - 1])
    warm = ex.Run(tiny, store, "capacity", "tiny", source, methods.OnePass(recipe, "prefix"), 3)
    with pytest.raises(PrototokError, match="warm cold"):
        run_capacity(warm, texts, CapacityConfig((4, 8, 11)))
