"""The report on a store written by hand (no model, no fitting): every section and figure from known rows, the
papers' numbers (report.reference) matched by model id and exact source key and shown only beside settings
measured as the paper did, with the reason otherwise, methods told apart by the registry, H_LM in nats, and
`report --help` documenting its options. The report of a store the experiments wrote is tested in
test_experiments.py and test_cli_experiments.py."""

import math
from collections import Counter
from dataclasses import replace

import pytest
from click.testing import CliRunner

import prototok.report.reference as reference
from prototok.cli import main
from prototok.experiments.capacity import summarize
from prototok.report import paper_number, write_report
from prototok.report.markdown import fmt, md_table
from prototok.report.reference import PG19, Reference, model_id, paper_capacity, source_id
from prototok.store import Row, Store

MODEL = "EleutherAI/pythia-160m"  # one of the paper's Table 3 models
SOURCE = PG19  # the paper's PG-19 as prototok loads it, exactly
ONEPASS = dict(layout="e m^(N-1)", recipe="paper")
CRAM = dict(layout="hc-mem", recipe="hc-cram(num_mem=1)")  # the baseline as hidden_capacity runs it
SINK = dict(
    layout="mem", recipe="cram(num_mem=1)"
)  # prototok's sink variant, as rows stored before the cram/cram-sink split
# Stand-ins for the published numbers, where a test is about the matching, not about the table's values
KNOWN = Reference("OS", "Table 3", "pythia-160m", "PG-19", "capacity", 128)


@pytest.fixture
def known_reference(monkeypatch):
    monkeypatch.setattr(reference, "PAPER", (KNOWN, Reference("OS", "Table 3", "pythia-160m", "PG-19", "h_lm", 300.5)))


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


FITTED = dict(steps=10, fit_seconds=1.0, batch_size=2, device="cpu")  # every row's bookkeeping


def row(experiment, sample, length, accuracy, *, sharing="none", gen=None, decode=0.01, **kw) -> Row:
    """A fitted text (H_LM 2.5 bits/token): one proto-token file per (experiment, layout, sharing, length),
    decoded in `decode` s at 2 tokens per text token."""
    kw = FITTED | ONEPASS | kw
    path = f"{experiment}-{kw['layout']}-{sharing}-{length}.pt"
    kw.setdefault("tokens", length)  # rows written now record the count of the text fitted
    return Row(
        experiment,
        MODEL,
        SOURCE,
        sample,
        length,
        seed=0,
        sharing=sharing,
        accuracy=accuracy,
        gen_accuracy=gen,
        h_lm_bits=2.5 * length,
        decode_seconds=decode,
        decode_tokens=2 * length,
        proto_path=path,
        **kw,
    )


def measured(kind: str, item: str, params: str, value: dict) -> tuple:
    """A geometry measurement of texts of 6 tokens, as Store.add_geometry takes it."""
    return (MODEL, SOURCE, "paper", "e m^(N-1)", 6, kind, item, params, "fp", value)


@pytest.fixture
def store_path(tmp_path):
    """Capacity (one-pass: sample 0 reaches 8 tokens, sample 1 only 4; the baseline: teacher-forced 1.0 at 4 and
    8, 1.0 and 0.9 at 16, greedy collapsing at 8; the sink variant: the same rows at 4 and 8, judged on greedy
    generation), layouts, sharing (a shared e) and one geometry measurement of each kind."""
    path = tmp_path / "r.db"
    rows = [
        row("capacity", 0, 4, 1.0),
        row("capacity", 0, 8, 1.0),
        row("capacity", 1, 4, 1.0),
        row("capacity", 1, 8, 0.5),
        *(row("capacity", s, 4, 1.0, gen=1.0, decode=0.1, **CRAM) for s in (0, 1)),
        *(row("capacity", s, 8, 1.0, gen=0.25, decode=0.1, **CRAM) for s in (0, 1)),
        row("capacity", 0, 16, 1.0, gen=0.1, decode=0.1, **CRAM),
        row("capacity", 1, 16, 0.9, gen=0.1, decode=0.1, lm_correct=3, loss=0.2, **CRAM),  # 3 of 15 right alone
        *(row("capacity", s, 4, 1.0, gen=1.0, decode=0.1, **SINK) for s in (0, 1)),
        *(row("capacity", s, 8, 1.0, gen=0.25, decode=0.1, **SINK) for s in (0, 1)),
        *(row("layouts", s, n, 1.0, layout=lay) for s in (0, 1) for n in (1, 4) for lay in ("e m^(N-1)", "e^N")),
        *(row("sharing", s, 4, 0.75, sharing=sh) for s in (0, 1) for sh in ("m/2", "e/2")),
    ]
    pair = "s0/seed0-seed1"
    path_value = {
        "taus": [0.0, 0.5, 1.0],
        "line_accuracy": [1.0, 0.5, 1.0],
        "curve_accuracy": [1.0, 1.0, 1.0],
        "length_ratio": 1.25,
        "cosine_distance": 0.5,
    }
    vector = {"e_norm": 10.0, "m_norm": 2.0, "table_norm": [1.6, 0.15], "e_nearest": ["cat"], "m_nearest": ["dog"]}
    with Store(path) as store:
        store.add(rows)
        store.add_geometry(
            [
                measured("distance", pair, "", {"group": "same-text", "distance": 0.5, "e": 0.4, "m": 0.9}),
                measured("path", pair, "points=3", path_value),
                measured("vector", "s0/seed0", "", vector),
            ]
        )
    return path


def line_of(md: str, *cells: str) -> str:
    """The one table line holding all these cells."""
    (line,) = [ln for ln in md.splitlines() if all(f"| {c} |" in ln for c in cells)]
    return line


def test_every_section_and_figure_from_known_rows(store_path, tmp_path):
    out = tmp_path / "rep"
    files = write_report(store_path, out)
    md = (out / "report.md").read_text()
    assert files[0] == out / "report.md"
    pngs = [
        "accuracy_vs_length",
        "capacity",
        "fig1_best_capacity",
        "hlm_vs_length",
        "layouts",
        "fig3_hlm_onepass_vs_cram",
        "fig4_throughput",
        "fig6_distances",
        "fig7_paths",
    ]
    assert [p.stem for p in files[1:]] == pngs  # the order the sections come in
    for p in files[1:]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"![{p.stem}]({p.name})" in md
    headings = [
        "## Capacity per model and source",
        "## Accuracy vs length (capacity runs)",
        "## Table 1: arrangements of e and m",
        "## Table 2: one vector shared by a group of texts",
        "## Table 4: time to fit and to decode",
        "## Cramming baseline (arXiv 2502.13063) vs one pass",
        "### Fig. 3: H_LM reconstructed per text",
        "### Token Gain and Information Gain (hidden_capacity)",
        "### Fig. 4: reconstruction throughput",
        "## Geometry of solutions (Figs. 6 and 7)",
        "## Figures",
    ]
    assert [md.index(h) for h in headings] == sorted(md.index(h) for h in headings)
    assert "From `" in md and "26 fitted texts" in md

    # Token and Information Gain over the baseline's one unreconstructed text with lm_correct (16 tokens, no
    # BOS: 15 predicted; H_LM 40 bits), as hidden_capacity's notebook: x max_length 16
    info, tokens = (40 * math.log(2) / 15 - 0.2) * 16, (0.9 - 3 / 15) * 16
    assert line_of(md, "hc-cram(num_mem=1)", "cram", "70.9 +- 11.0 ([CR] Table 1)").endswith(
        f"| 1 | {info:.1f} +- 0.0 | {tokens:.1f} +- 0.0 | 396.4 +- 46.0 ([CR] Table 1) | 70.9 +- 11.0 ([CR] Table 1) |"
    )  # beside it, [CR] Table 1's Info and Gain for Pythia-160M on PG-19: the baseline as hidden_capacity runs it

    # capacity: the paper's statistic, the max over samples (8), C_tokens (8: every text as long as its grid
    # length), mean +- std and per-sample values beside it; H_LM (2.5 bits/token, shown in nats) at capacity
    # 15 +- 5 bits, 20 bits max; [OS] Table 3's numbers (Pythia-160M, PG-19, no sharing) beside this setting
    # only, as it is measured the paper's way
    h15, h20, h5 = fmt(15 * math.log(2)), fmt(20 * math.log(2)), fmt(5 * math.log(2))
    assert line_of(md, SOURCE, "e m^(N-1)", "none", "paper").endswith(
        f"| 2 | 1 | 8 | 8 | 6.0 +- 2.0 | 8, 4 | 6.0 | {h15} +- {h5} | {h20} | 128 ([OS] Table 3) "
        "| 388.4 +- 66.4 ([OS] Table 3) |"
    )
    # the baseline: judged teacher-forced, the largest length whose mean best accuracy is >= 0.99 (8; sample 0
    # alone reaches 16: C_tokens 16); [CR] Table 1's Max beside it, which prints no H_LM
    h, h10 = fmt((40 + 20) / 2 * math.log(2)), fmt(10 * math.log(2))
    no_h_lm = "not comparable: [CR] Table 1 prints no H_LM (its information gain is in the gains table)"
    assert line_of(md, SOURCE, "hc-mem", "none", "hc-cram(num_mem=1)").endswith(
        f"| 2 | 1 | 8 | 16 | 12.0 +- 4.0 | 16, 8 | 12.0 | {h} +- {h10} | {fmt(40 * math.log(2))} | 80 ([CR] Table 1) "
        f"| {no_h_lm} |"
    )
    # the sink variant: judged on greedy generation (4 for both samples); not the paper's baseline
    assert line_of(md, SOURCE, "mem", "none", "cram(num_mem=1)").endswith(
        f"| 2 | 1 | 4 | 4 | 4.0 +- 0.0 | 4, 4 | 4.0 | {h10} +- 0.0 | {h10} "
        f"| not comparable: prototok's sink variant, not [CR]'s [mem, BOS, text] | {no_h_lm} |"
    )
    # Fig. 1: the model's best one-pass capacity over its sources, beside the paper's best over Table 3's
    assert "| EleutherAI/pythia-160m | 8 | " + SOURCE + " | e m^(N-1) | paper | 1 | 128 (Fanfics, [OS] Table 3) |" in md
    # Tables 1 and 2: not this model's, and said why
    assert "Paper ([OS] Table 1): not comparable: model EleutherAI/pythia-160m (Table 1's: Llama-3.2-1B)." in md
    assert "| m | 2 | 4 | 0.7500 +- 0.0000 | 0.7500 +- 0.0000 | 2 |" in md  # max over seeds: mean +- std
    assert "H_LM at capacity (nats)" in md and "(bits)" not in md
    # Table 4: the method named by the registry, from the layout the rows carry; one line per experiment,
    # recipe, layout and sharing kind; "-" where no text was reconstructed; a shared group's time per text
    assert "| cpu | cram | capacity | hc-cram(num_mem=1) | hc-mem | none | 8 | 2 | 1.00 |" in md
    assert "| cpu | onepass | capacity | paper | e m^(N-1) | none | 8 | 2 | 1.00 |" in md
    assert "| cpu | cram-sink | capacity | cram(num_mem=1) | mem | none | 8 | 2 | - (none reconstructed) |" in md
    assert "| cpu | onepass | sharing | paper | e m^(N-1) | m (group time / size) | 4 | 2 | - (none" in md
    assert line_of(md, "onepass", "capacity", "paper", "8").endswith(
        "| not comparable: batch 2 (Table 4: one text fitted alone) |"
    )
    # cramming's table: teacher-forced 1.0, greedy 0.25 at 8 tokens, none by greedy; each judged on its own
    assert line_of(md, "hc-cram(num_mem=1)", "8", "teacher-forced").endswith(
        "| 2 | 1.0000 | 0.2500 | 0 | teacher-forced | 10 |"
    )
    assert line_of(md, "cram(num_mem=1)", "8", "greedy").endswith("| 2 | 1.0000 | 0.2500 | 0 | greedy | 10 |")
    # Fig. 3 and 4: capacities 8 vs 8 (baseline) and 8 vs 4 (sink); H_LM reconstructed (mean over samples of
    # the largest, nats); decode 1,600 vs 160 tok/s at 8 tokens
    assert line_of(md, "e m^(N-1), paper", "hc-cram(num_mem=1)").endswith(f"| 8 | 8 | 6.0 | 12.0 | {h15} | {h} |")
    assert line_of(md, "e m^(N-1), paper", "cram(num_mem=1)").endswith(
        f"| 8 | 4 | 6.0 | 4.0 | {h15} | {fmt(10 * math.log(2))} |"
    )
    assert "| cpu | 8 | cram | 1,600 | 160 | 10.0x |" in md and "| cpu | 8 | cram-sink | 1,600 | 160 | 10.0x |" in md
    assert "| e^N | 1.000 +- 0.000 | 1.000 +- 0.000 |" in md
    assert "Note: sharing e under e m^(N-1) forces the same first token" in md
    assert "| same-text | 1 | 0.5000 | 0.0000 | 0.5000 | 0.5000 | 0.4000 | 0.9000 |" in md
    assert "| same-context | 0 | - | - | - | - | - | - |" in md
    assert "| s0/seed0-seed1 | 0.833 | 0.500 | 1.000 | 1.000 | 1.250 | 0.5000 | points=3 |" in md
    assert "|e| 10.00, |m| 2.00; vocabulary embeddings 1.60 +- 0.15" in md and "e `cat` (1); m `dog` (1)" in md


def test_an_empty_store_gives_a_report_without_sections(tmp_path):
    files = write_report(tmp_path / "empty.db", tmp_path / "rep")
    assert files == [tmp_path / "rep" / "report.md"]
    assert files[0].read_text().count("#") == 1  # the title alone


def test_paper_numbers_match_by_model_id_source_and_setting(monkeypatch, known_reference):
    """Numbers per model (all six of Table 3), data and sharing, matched by hub id or local path and by the exact
    source key, and only beside a setting measured the paper's way (KNOWN stands in for reference.PAPER)."""
    ids = {
        "meta-llama/Meta-Llama-3.1-8B": "llama-3.1-8b",
        "meta-llama/Llama-3.1-8B": "llama-3.1-8b",
        "meta-llama/Llama-3.2-1B": "llama-3.2-1b",
        "meta-llama/Llama-3.2-3B/": "llama-3.2-3b",
        "EleutherAI/pythia-160m": "pythia-160m",
        "EleutherAI/pythia-410m": "pythia-410m",
        "/models/Pythia-1.4B/": "pythia-1.4b",
        "C:\\models\\pythia-160m": "pythia-160m",
    }
    for given, want in ids.items():
        assert model_id(given) == want, given
    for other in ("smollm2-135m", "EleutherAI/pythia-160m-deduped", "meta-llama/Llama-3.2-1B-Instruct"):
        assert model_id(other) is None
    # exact source keys, a data seed or min_chars kept; never a substring
    keys = (PG19, f"{PG19}@seed=1", f"{PG19}@min_chars=500", "random-glove", "random-glove-drawn", "random",
            "second-half:hf:yurakuratov/fanfics_1k_chunks", "hf:pg19", f"generated:{PG19}",
            f"generated:{PG19}@continuations=4", "wiki", "file:/data/pg19.txt")  # fmt: skip
    assert [source_id(k) for k in keys] == [
        "PG-19", "PG-19", "PG-19", "Random", None, None, "Fanfics", None, None, None, None, None,
    ]  # fmt: skip
    assert paper_number("capacity", "/models/pythia-160m/") == 128
    assert paper_number("capacity", "/models/pythia-160m/", "random-glove") is None  # another source
    assert paper_number("capacity", "smollm2-135m") is None
    assert paper_capacity(MODEL, PG19, "e m^(N-1)", "none", "paper") == 128
    assert paper_capacity(MODEL, "hf:pg19", "e m^(N-1)", "none", "paper") is None  # not the paper's key
    assert paper_capacity(MODEL, PG19, "e m^(N-1)", "none", "fast-e50") is None  # our recipe
    assert paper_capacity(MODEL, PG19, "e^N", "none", "paper") is None  # another layout
    assert paper_capacity(MODEL, PG19, "e m^(N-1)", "m/4", "paper") is None  # shared m: its own number
    assert paper_capacity(MODEL, PG19, "e m^(N-1)", "none", "paper", "mean-accuracy") is None
    monkeypatch.setattr(reference, "PAPER", (KNOWN, Reference("OS", "Table 3", "pythia-160m", "PG-19", "capacity",
                                                              90, share="m")))  # fmt: skip
    assert paper_capacity(MODEL, PG19, "e m^(N-1)", "m/4", "paper") == 90


def test_the_papers_tables_are_all_held_with_where_they_come_from():
    """Every number of both papers' tables that a prototok table can stand beside, tagged with its table."""
    counts = Counter((r.paper, r.table) for r in reference.PAPER)
    # Table 3: 6 models x 4 datasets x 2 sharing kinds x (Ctokens, H_LM); Table 4: 6 x 5; Table 1: 5 layouts x 4
    # lengths; Table 2: 2 vectors x 2 statistics x 3 groups; [CR] Table 1: 6 x (PG-19 and random: 3, fanfics: 1)
    assert counts == {("OS", "Table 3"): 96, ("OS", "Table 4"): 30, ("OS", "Table 1"): 20, ("OS", "Table 2"): 12,
                      ("CR", "Table 1"): 42}  # fmt: skip
    h = reference.table3("h_lm", model="meta-llama/Llama-3.1-8B", source=PG19, layout="e m^(N-1)", sharing="m/50",
                         recipe="paper", statistic="max")  # fmt: skip
    assert h.cell(".1f") == "832.3 +- 171.0 ([OS] Table 3)"
    assert paper_number("capacity", "EleutherAI/pythia-410m", "random-glove@seed=2") == 92
    assert reference.best_capacity("meta-llama/Llama-3.1-8B").value == 724
    t4 = reference.table4(model="meta-llama/Llama-3.2-1B", experiment="capacity", recipe="paper", layout="e m^(N-1)",
                          sharing="none", length=512, batch=1, device="cuda:0")  # fmt: skip
    assert t4.cell() == "- ([OS] Table 4)"  # the paper's "-": beyond capacity
    t1 = reference.table1(model="meta-llama/Llama-3.2-1B", source=PG19, recipe="paper", layout="e m^N", length=256,
                          seeds=1)  # fmt: skip
    assert t1.cell(".2f") == "0.97 +- 0.15 ([OS] Table 1)"
    t2 = reference.table2(model="meta-llama/Llama-3.2-1B", source=PG19, recipe="paper", layout="e m^(N-1)",
                          shared="e", group=16, length=256, statistic="max", seeds=10)  # fmt: skip
    assert t2.ref.text(".2f") == "0.99 +- 0.01" and "not name" in t2.ref.note
    cr = dict(model="EleutherAI/pythia-1.4b", as_hidden_capacity=True, sharing="none", recipe="hc-cram(num_mem=1)")
    assert reference.cramming_table1("capacity", source="random-glove-drawn", **cr).value == 139
    assert reference.cramming_table1("information_gain", source=PG19, **cr).cell() == "792.8 +- 143.4 ([CR] Table 1)"
    assert (
        reference.cramming_table1("capacity", source="second-half:hf:yurakuratov/fanfics_1k_chunks", **cr).value == 192
    )


def test_not_comparable_says_why():
    """Beside a setting measured otherwise, the report says which check failed, first failing check first."""
    one = dict(model="EleutherAI/pythia-160m", layout="e m^(N-1)", sharing="none", recipe="paper", statistic="max")

    def why(source=PG19, **kw):
        b = reference.table3("capacity", **(one | {"source": source} | kw))
        assert b.ref is None and b.cell() == f"not comparable: {b.why}"
        return b.why

    assert "model smollm2-135m is not one of [OS] Table 3's" in why(model="smollm2-135m")
    assert "generated: continues a 64-token context" in why(f"generated:{PG19}")  # not PG-19 by substring
    assert "Debian's wamerican words" in why("random")  # not the papers' GloVe random texts
    assert "draws each length" in why("random-glove-drawn")  # [CR]'s random texts, not Table 3's
    assert "not the papers' cut" in why("hf:yurakuratov/pg19_valid_1k_chunks")
    assert "is not one of the paper's" in why("wiki")
    assert why(layout="e m^N") == "layout e m^N (the paper's: e m^(N-1))"
    assert why(recipe="paper(max_steps=300)") == "recipe paper(max_steps=300) (the paper's: paper)"
    assert "a shared e" in why(sharing="e/4")
    assert "statistic mean-accuracy" in why(statistic="mean-accuracy")
    assert why(lengths=(4, 6, 8)) == "lengths 6 are off the paper's grid"
    assert "token counts" in why(counted=False)
    cr = dict(model="EleutherAI/pythia-160m", sharing="none", recipe="hc-cram(num_mem=1)", as_hidden_capacity=True)
    assert (
        "sink variant" in reference.cramming_table1("capacity", source=PG19, **cr | {"as_hidden_capacity": False}).why
    )
    assert "draws each length in 2..L" in reference.cramming_table1("capacity", source="random-glove", **cr).why
    assert "off [CR]'s grid" in reference.cramming_table1("capacity", source=PG19, lengths=(64, 90), **cr).why
    assert reference.cramming_table1("capacity", source="random-glove-drawn", lengths=(90,), **cr).value == 65
    t4 = dict(model="EleutherAI/pythia-160m", experiment="capacity", recipe="paper", layout="e m^(N-1)", length=64)
    assert reference.table4(sharing="m", batch=1, device="cuda", **t4).why.startswith("a shared vector")
    assert reference.table4(sharing="none", batch=1, device="cpu", **t4).why == "timed on cpu (Table 4: one GPU)"
    assert reference.table4(sharing="none", batch=1, device="cuda", **t4).value == 25


def test_capacity_statistics_from_known_rows():
    """One-pass: max over samples of the per-sample capacity (itself max over seeds); the baseline: the largest
    length whose mean best accuracy over texts is >= 0.99, whatever single texts reach."""
    rs = [
        row("capacity", 0, 4, 1.0),
        row("capacity", 0, 8, 0.5),
        replace(row("capacity", 0, 8, 1.0), seed=1),  # another seed reconstructs 8
        row("capacity", 1, 4, 0.5),
        row("capacity", 2, 4, 1.0),
    ]
    s = summarize([r.__dict__ for r in rs])
    assert s.statistic == "max" and s.per_sample == [8, 0, 4] and s.capacity == 8 and s.mean == 4.0
    assert s.h_lm_top == pytest.approx(20 * math.log(2)) and "max over 3 samples" in s.render()
    cram = [row("capacity", i, n, a, gen=0.0, **CRAM).__dict__ for i in (0, 1) for n, a in ((4, 1.0), (8, 1.0 - i))]
    c = summarize(cram)
    assert c.statistic == "mean-accuracy" and c.judged == "teacher-forced accuracy"
    assert c.per_sample == [8, 4] and c.capacity == 4  # mean best accuracy at 8: 0.5


def test_markdown_cells():
    assert fmt(None) == "-" and fmt(1234.5, ",.0f") == "1,234" and fmt(2.25) == "2.2"
    assert md_table(["a", "b"], [[1, None]]) == "| a | b |\n|---|---|\n| 1 | None |"


def test_a_pipe_or_a_line_break_in_a_cell_keeps_its_row_whole():
    """A source name such as 'a|b.txt' or one holding a line break would split its row or break the table."""
    table = md_table(["source", "n"], [["docs/a|b.txt", 1], ["two\nlines\r\nhere", 2]])
    assert table.splitlines()[2:] == ["| docs/a\\|b.txt | 1 |", "| two lines here | 2 |"]


def test_report_cli_documents_its_options_and_refuses_a_missing_database(tmp_path):
    r = cli("report", "--help")
    assert r.exit_code == 0
    assert "--db FILE" in r.output and "results database (SQLite)" in r.output
    assert "--out DIRECTORY" in r.output and "folder for report.md and the PNG figures" in r.output
    r = cli("report", "--db", tmp_path / "none.db", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "no results database" in r.output and not (tmp_path / "o").exists()


def test_report_cli_lists_what_it_wrote(store_path, tmp_path):
    r = cli("report", "--db", store_path, "--out", tmp_path / "rep")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == f"wrote {tmp_path / 'rep' / 'report.md'}"
    assert len(r.output.splitlines()) == 10  # report.md and nine figures


def test_the_work_of_a_walk_is_summed_per_length_and_up_the_grid(tmp_path):
    """Evaluations per length (all rows) and the walk so far: what a warm walk is compared on with a cold one."""
    path = tmp_path / "r.db"
    walk = [(0, 4, 10), (1, 4, 20), (0, 8, 30), (1, 8, 40)]
    with Store(path) as store:
        store.add([row("capacity", s, n, 1.0, evals=e) for s, n, e in walk])
        store.add([row("capacity", 0, 4, 1.0, recipe="fast")])  # a row from before evals were recorded
    assert cli("report", "--db", path, "-o", tmp_path / "rep").exit_code == 0
    md = (tmp_path / "rep/report.md").read_text()

    def table(recipe: str) -> str:
        return md.split(f"### recipe {recipe}\n")[1].split("\n#")[0]

    assert line_of(table("paper"), "4", "30", "30") and line_of(table("paper"), "8", "70", "100")
    assert "| - | - |" in line_of(table("fast"), "4")


def test_fig3_left_sets_one_pass_with_a_shared_m_against_one_mem(tmp_path):
    """The paper's Fig. 3 left: one-pass with m shared by the texts, against cramming with one [mem]."""
    path = tmp_path / "f3.db"
    rows = [
        *(row("capacity", s, n, 1.0, sharing="m/2") for s in (0, 1) for n in (4, 8)),
        *(row("capacity", s, n, 1.0, gen=1.0, decode=0.1, **CRAM) for s in (0, 1) for n in (4, 8, 16)),
    ]
    with Store(path) as store:
        store.add(rows)
    out = tmp_path / "rep"
    write_report(path, out)
    md = (out / "report.md").read_text()
    line = line_of(md, "e m^(N-1), paper, m shared", "hc-cram(num_mem=1)")
    assert line.split("|")[5:7] == [" 8 ", " 16 "]  # capacity one-pass (shared m), capacity cramming


def test_figures_keep_more_than_ten_lines_distinct():
    from prototok.report.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    lines = [ax.plot([0, 1], [i, i])[0] for i in range(12)]
    assert len({(line.get_color(), line.get_linestyle()) for line in lines}) == 12
    plt.close(fig)
