"""The papers' protocol where prototok once differed, on the tiny model: a drawn-length text is counted and
scored at its drawn length, a text shorter than its grid length is fitted whole and counted (C_tokens) without
changing the grid capacity, random-word sources get their own sample count, the presets cover every table, a
shared group's time is per text in Table 4, and Fig. 3 draws the paper's guides."""

import math

import pytest
from click.testing import CliRunner

import prototok.experiments.runner as ex
import prototok.experiments.texts as tx
import prototok.methods as methods
from prototok.analysis.gains import gains, max_length
from prototok.cli import main
from prototok.experiments.capacity import CapacityConfig, run_capacity, summarize
from prototok.experiments.presets import PRESETS
from prototok.recipes import get_recipe
from prototok.sources import Sample, draws_lengths, is_random
from prototok.store import Row, Store

FAST = get_recipe("paper", lr=0.1, max_steps=40)


def run_of(tiny, tmp_path, source, recipe=FAST, batch_size=3):
    return ex.Run(tiny, Store(tmp_path / "r.db"), "capacity", "tiny", source, methods.OnePass(recipe), batch_size)


def test_a_drawn_text_is_counted_and_scored_at_its_drawn_length(tiny, tmp_path):
    """random-glove-drawn: rows stay keyed by the grid value L, record the drawn count, and Token / Information
    Gain multiply by it (hidden_capacity's max_length is the drawn value), not by L."""
    source, samples = tx.load("random-glove-drawn", 3, tiny, data_seed=4)
    texts = tx.prefixes(tiny, samples, [8, 16])
    run = run_of(tiny, tmp_path, source)
    summary = run_capacity(run, texts, CapacityConfig((8, 16), threshold=0.01))
    rows = run.rows()
    assert rows and draws_lengths(source)
    for r in rows:
        n = len(texts[r["sample"]].tokens[r["length"]])
        assert r["tokens"] == n <= r["length"] and max_length(r) == n  # the tiny tokenizer adds no BOS
        g = gains(r)
        original = r["h_lm_bits"] * math.log(2) / (n - 1)
        assert g.information == pytest.approx((original - r["loss"]) * n)
        assert g.tokens == pytest.approx((r["accuracy"] - r["lm_correct"] / (n - 1)) * n)
    # the count statistic: the most drawn tokens reconstructed, the grid value apart
    done = [r for r in rows if r["accuracy"] >= 0.01]
    assert summary.capacity_tokens == max(r["tokens"] for r in done)
    assert summary.capacity == max(r["length"] for r in done)
    # a drawing source's row stored before counts were kept: the count is unknown, never taken to be L
    old = rows[0] | {"tokens": None}
    assert gains(old) is None and summarize([old], 0.01).capacity_tokens is None


def test_a_text_shorter_than_its_grid_length_is_fitted_whole_once(tiny, tmp_path):
    """hidden_capacity truncates to max_length, so a shorter text is fitted whole: here once, at the first grid
    length above its count, keyed by that grid length; it counts towards C_tokens, not towards the grid value."""
    words = "the cat sat on the mat and then slept under tree bird sang"
    samples = [Sample("file:t", "long", 0, words), Sample("file:t", "short", 0, "the cat sat on mat and")]
    texts = tx.prefixes(tiny, samples, [4, 8, 16], whole=True)
    assert sorted(texts[0].tokens) == [4, 8, 16] and len(texts[0].tokens[16]) == 13  # 13 tokens: whole at 16
    assert sorted(texts[1].tokens) == [4, 8] and len(texts[1].tokens[8]) == 6  # 6 tokens: whole at 8, once
    assert texts[1].tokens[4] == texts[1].tokens[8][:4]
    assert sorted(tx.prefixes(tiny, samples, [4, 8, 16])[1].tokens) == [4]  # without whole: skipped, as before
    item = texts[1].item(8, 0, "e m^(N-1)")
    assert item.h_lm == pytest.approx(texts[1].bits[5]) and len(item.tokens) == 6  # H_LM of its own 6 tokens

    run = run_of(tiny, tmp_path, "file:t", batch_size=2)
    summary = run_capacity(run, texts, CapacityConfig((4, 8, 16)))
    short = {r["length"]: r for r in run.rows() if r["sample"] == 1}
    assert short[8]["tokens"] == 6 and short[4]["tokens"] == 4 and 16 not in short
    assert tx.whole_short(short[8]) and not tx.whole_short(short[4])
    assert short[4]["accuracy"] >= 0.99 and short[8]["accuracy"] >= 0.99  # the tiny model fits both
    s1 = summary.samples[1]
    assert (s1.capacity, s1.tokens) == (4, 6)  # grid value 4, count 6
    assert s1.h_lm_bits == pytest.approx(short[8]["h_lm_bits"])  # H_LM at C_tokens: the whole text's
    assert summary.by_length[8]["samples"] == 1  # the grid statistics leave the whole short text out
    assert summary.capacity_tokens == max(summary.samples[0].tokens, 6)


def test_a_group_sharing_m_takes_a_short_text_whole(tiny, tmp_path):
    """Table 3's shared half: one m for every text of a length, a short text fitted whole among them."""
    samples = [Sample("file:t", "long", 0, "the cat sat on the mat and then"), Sample("file:t", "s", 0, "bird sang")]
    texts = tx.prefixes(tiny, samples, [4, 8], whole=True)
    run = run_of(tiny, tmp_path, "file:t")
    run_capacity(run, texts, CapacityConfig((4, 8), share="m"))
    rows = {(r["sample"], r["length"]): r for r in run.rows()}
    assert rows[(1, 4)]["tokens"] == 2 and rows[(1, 4)]["sharing"] == "m/2" and rows[(0, 8)]["tokens"] == 8


def test_random_word_sources_have_their_own_sample_count():
    """The cramming code ran 100 random texts where it ran 50 natural ones: Setup.random_samples."""
    setup = ex.Setup(data=("wiki",), samples=50, random_samples=100)
    assert [ex.samples_for(setup, s) for s in ("random-glove", "random-glove-drawn", "random", "wiki")] == [
        100, 100, 100, 50,
    ]  # fmt: skip
    assert ex.samples_for(ex.Setup(data=("wiki",), samples=7), "random-glove") == 7
    assert is_random("random-glove@seed=2") and not is_random("generated:random-glove")
    with pytest.raises(ValueError):
        ex.Setup(data=("wiki",), random_samples=0)


def test_a_preset_per_table(tiny_dir, tmp_path):
    """table3-shared (Table 3's shared-m half) and cram-table1 ([CR] Table 1) beside table1..3; random texts
    at 100 per length; the dry run prints them and loads 100 random texts."""
    assert PRESETS["table3-shared"].config.share == "m" and PRESETS["table3"].config.share == "none"
    assert {p.random_samples for p in PRESETS.values()} == {100}
    cram = PRESETS["cram-table1"]
    assert cram.make_method().key == "hc-cram(num_mem=1)" and "random-glove-drawn" in cram.data
    assert cram.config.lengths[:3] == (64, 80, 96)
    db = tmp_path / "r.db"
    args = ["reproduce", "table3-shared", "--model", str(tiny_dir), "--data", "random-glove", "--db", str(db)]
    res = CliRunner().invoke(main, [*args, "--dry-run"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "shared: m" in res.output and "(random-word sources: 100)" in res.output
    assert "[random-glove] 100 samples" in res.output and not db.exists()


def test_table4_divides_a_shared_groups_time_and_keys_every_setting():
    from prototok.report.timing import timing_rows

    def row(sharing, seconds, layout="e m^(N-1)", recipe="paper"):
        return Row("capacity", "m", "s", 0, 8, 0, layout, sharing, recipe, fit_seconds=seconds, steps=9,
                   accuracy=1.0, batch_size=2, device="cpu").__dict__  # fmt: skip

    lines = timing_rows([row("m/4", 8.0), row("none", 3.0), row("none", 5.0, recipe="fast")])
    assert {k[-2]: v["fit_s"] for k, v in lines.items() if k[4] == "paper"} == {"m": 2.0, "none": 3.0}
    assert len(lines) == 3  # recipes are never averaged together


def test_fig3_draws_the_papers_guides(tmp_path, monkeypatch):
    import prototok.report.baseline as baseline
    from prototok.report.results import Results

    from .test_report import CRAM, row

    rows = [row("capacity", s, n, 1.0) for s in (0, 1) for n in (4, 8)]
    rows += [row("capacity", s, n, 1.0, gen=1.0, **CRAM) for s in (0, 1) for n in (4, 8)]
    seen = {}

    def keep(fig, ax, path, **props):
        seen[path.name] = [line.get_label() for line in ax.get_lines()]
        return path

    monkeypatch.setattr(baseline, "finish", keep)
    baseline.figures(Results([r.__dict__ for r in rows], []), tmp_path)
    assert {"y = x", "y = x/2", "y = x/5"} <= set(seen["fig3_hlm_onepass_vs_cram.png"])


def test_table2s_max_rows_carry_their_std_over_texts():
    """The paper prints Table 2's "max" rows as mean +- std: the std of the per-text best over the seeds."""
    from prototok.experiments.sharing import sharing_table

    accs = {(0, 0): 1.0, (0, 1): 0.5, (1, 0): 0.5, (1, 1): 0.25}
    rows = [{"sharing": "m/2", "length": 8, "sample": t, "seed": s, "accuracy": a} for (t, s), a in accs.items()]
    st = sharing_table(rows)[("m", 2, 8)]
    assert (st["max"], st["max_std"], st["seeds"]) == (0.75, 0.25, 2)
