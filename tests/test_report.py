"""The report on a store written by hand (no model, no fitting): every section and figure from known rows, the
papers' numbers matched by model name, methods told apart by the registry, and `report --help` documenting
its options. The report of a store the experiments wrote is tested in test_experiments.py and
test_cli_experiments.py."""

import pytest
from click.testing import CliRunner

from prototok.cli import main
from prototok.report import paper_number, write_report
from prototok.report.markdown import fmt, md_table
from prototok.store import Row, Store

MODEL = "EleutherAI/pythia-160m"  # has a published capacity (128)
SOURCE = "file:docs"
ONEPASS = dict(layout="e m^(N-1)", recipe="paper")
CRAM = dict(layout="mem", recipe="cram(num_mem=1)")


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


FITTED = dict(steps=10, fit_seconds=1.0, batch_size=2, device="cpu")  # every row's bookkeeping


def row(experiment, sample, length, accuracy, *, sharing="none", gen=None, decode=0.01, **kw) -> Row:
    """A fitted text (H_LM 2.5 bits/token): one proto-token file per (experiment, layout, sharing, length),
    decoded in `decode` s at 2 tokens per text token."""
    kw = FITTED | ONEPASS | kw
    path = f"{experiment}-{kw['layout']}-{sharing}-{length}.pt"
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
    """Capacity (one-pass: sample 0 reaches 8 tokens, sample 1 only 4; cramming: both 4 by greedy generation,
    teacher-forced 1.0 throughout), layouts, sharing (a shared e) and one geometry measurement of each kind."""
    path = tmp_path / "r.db"
    rows = [
        row("capacity", 0, 4, 1.0),
        row("capacity", 0, 8, 1.0),
        row("capacity", 1, 4, 1.0),
        row("capacity", 1, 8, 0.5),
        *(row("capacity", s, 4, 1.0, gen=1.0, decode=0.1, **CRAM) for s in (0, 1)),
        *(row("capacity", s, 8, 1.0, gen=0.25, decode=0.1, **CRAM) for s in (0, 1)),
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
        "### Fig. 4: reconstruction throughput",
        "## Geometry of solutions (Figs. 6 and 7)",
        "## Figures",
    ]
    assert [md.index(h) for h in headings] == sorted(md.index(h) for h in headings)
    assert "From `" in md and "20 fitted texts" in md

    # capacity: one-pass 8 and 4 -> 6 +- 2, the paper's 128 beside it; cramming judged on greedy generation
    assert line_of(md, "e m^(N-1)", "none", "paper").endswith("| 6.0 +- 2.0 | 6.0 | 15.0 | 128 |")
    assert line_of(md, "mem", "none", "cram(num_mem=1)").endswith("| 4.0 +- 0.0 | 4.0 | 10.0 | - |")
    # Table 4: the method named by the registry, from the layout the rows carry
    assert "| cpu | cram | 8 | 2 |" in md and "| cpu | onepass | 8 | 2 |" in md
    # cramming's table: teacher-forced 1.0, greedy 0.25 at 8 tokens, none reconstructed
    assert line_of(md, "cram(num_mem=1)", "8").endswith("| 2 | 1.0000 | 0.2500 | 0 | 10 |")
    # Fig. 3 and 4: capacities 6 vs 4; H_LM reconstructed (mean over samples of the largest) 15 vs 10;
    # decode 1,600 vs 160 tok/s at 8 tokens
    assert line_of(md, "e m^(N-1), paper", "cram(num_mem=1)").endswith("| 6.0 | 4.0 | 15.0 | 10.0 |")
    assert "| cpu | 8 | 1,600 | 160 | 10.0x |" in md
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


def test_paper_numbers_match_by_model_name():
    assert paper_number("capacity", "meta-llama/Llama-3.2-1B") == 362
    assert paper_number("capacity", "/models/pythia-160m/") == 128
    assert paper_number("capacity", "smollm2-135m") is None


def test_markdown_cells():
    assert fmt(None) == "-" and fmt(1234.5, ",.0f") == "1,234" and fmt(2.25) == "2.2"
    assert md_table(["a", "b"], [[1, None]]) == "| a | b |\n|---|---|\n| 1 | None |"


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
    assert len(r.output.splitlines()) == 9  # report.md and eight figures
