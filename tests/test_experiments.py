"""Experiments on the tiny model: stored rows match their proto-token files, a killed run resumes without
refitting or duplicating, dry runs fit nothing, and the report renders; plus one short real-model run."""

import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

import prototok.experiments.runner as ex
import prototok.experiments.texts as tx
import prototok.methods as methods
from prototok.cli import main
from prototok.decode import decode_tokens
from prototok.experiments.capacity import CapacityConfig, run_capacity
from prototok.fit import fit
from prototok.protofile import ProtoTokens
from prototok.recipes import get_recipe
from prototok.store import KEY, Store

from .conftest import write_docs

FAST = get_recipe("paper", lr=0.1, max_steps=40)
SHORT = get_recipe("paper", lr=0.1, max_steps=12)  # where only the bookkeeping is under test
TINY_FIT = ["--recipe", "paper", "--lr", "0.1", "--steps", "12", "--min-chars", "300"]


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    """Three documents of paragraphs in the tiny model's vocabulary (prototok.sources cuts samples at blank lines)."""
    return write_docs(tmp_path_factory.mktemp("docs"), seed=0)


def make_run(lm, db, docs, *, n=2, lengths=(4, 8), recipe=FAST, batch_size=2, experiment="capacity"):
    source, samples = tx.load(str(docs), n, lm, min_chars=300)
    texts = tx.prefixes(lm, samples, list(lengths))
    return ex.Run(lm, Store(db), experiment, "tiny", source, methods.OnePass(recipe), batch_size), texts


def count_fitted(monkeypatch):
    """Wrap the fitter the experiments call; returns the list of texts it was given."""
    seen = []
    real = methods.fit_resolved

    def counting(lm, token_lists, **kw):
        seen.extend(token_lists)
        return real(lm, token_lists, **kw)

    monkeypatch.setattr(methods, "fit_resolved", counting)
    return seen


def decoded(lm, store, r) -> list[int]:
    """The row's text decoded afresh from its stored proto-token file."""
    proto = ProtoTokens.load(store.path.parent / r["proto_path"])
    proto.check_model(lm)
    return decode_tokens(lm, proto)[r["proto_index"]]


def test_h_lm_matches_the_models_own_cross_entropy(tiny):
    toks = tiny.tokenizer("the cat sat on the mat", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(tiny.model(torch.tensor([toks])).logits[0].float(), -1)
    nats = [-logp[i, toks[i + 1]].item() for i in range(len(toks) - 1)]
    bits, ctx = tx.h_lm_bits(tiny, toks)  # the tiny tokenizer has no BOS: token 0 is not predicted
    assert ctx == "none" and bits[0] == 0.0 and len(bits) == len(toks)
    assert bits[-1] == pytest.approx(sum(nats) / math.log(2), rel=1e-4)

    bos = replace(tiny, tokenizer=_with_bos(tiny.tokenizer))
    bits, ctx = tx.h_lm_bits(bos, toks)
    with torch.no_grad():
        logp = torch.log_softmax(tiny.model(torch.tensor([[1, *toks]])).logits[0].float(), -1)
    assert ctx == "bos" and bits[0] == pytest.approx(-logp[0, toks[0]].item() / math.log(2), rel=1e-4)
    # hidden_capacity's rule: a tokenizer that names a BOS but does not add one (Pythia, SmolLM2)
    # counts as having none
    named = replace(tiny, tokenizer=_with_bos(tiny.tokenizer, adds=False))
    assert tx.h_lm_bits(named, toks) == tx.h_lm_bits(tiny, toks)


def _with_bos(tok, adds: bool = True):
    """The tokenizer naming "<pad>" (id 1) its BOS, and (adds) putting it in front of every text by default."""
    import copy

    from tokenizers import processors

    t = copy.deepcopy(tok)
    t.bos_token = "<pad>"  # id 1
    if adds:
        t.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="<pad> $A", special_tokens=[("<pad>", 1)]
        )
    return t


def test_capacity_is_reported_in_nats_and_the_baselines_grid_goes_past_1448(tiny):
    from prototok.baselines.cramming import Cramming
    from prototok.experiments.capacity import LENGTHS, lengths_for, nats, prefix_lengths

    assert nats(1.0) == pytest.approx(math.log(2)) and nats(None) is None
    cfg = CapacityConfig()
    assert prefix_lengths(cfg)[-3:] == [1448, 1568, 2048]  # cut for every method, walked by the baseline only
    assert prefix_lengths(CapacityConfig(lengths=(4, 8))) == [4, 8]
    from types import SimpleNamespace

    big = SimpleNamespace(max_positions=4096)  # lengths_for asks the model its context only
    for method, top in ((methods.OnePass(FAST), [1448]), (Cramming(), [1448, 1568, 2048])):
        run = ex.Run(big, None, "capacity", "tiny", "s", method)
        ok, dropped = lengths_for(run, cfg)
        assert ok[-len(top) :] == top and dropped == [] and ok[: len(LENGTHS)] == list(LENGTHS)


def test_warm_start_draw_is_fits_own_draw(tiny):
    """Rows depend on their key only because each text starts from the draw fit() gives its sample index."""
    toks = tiny.tokenizer("the cat sat", add_special_tokens=False)["input_ids"]
    rec = get_recipe("fast", max_steps=0)  # e drawn at e_scale x m's scale
    res = fit(tiny, [toks] * 3, recipe=rec, seed=3)
    alone = fit(tiny, [toks], recipe=rec, seed=3, init_ids=[2])  # the same text, fitted alone with its id
    assert torch.equal(res[2].e, alone[0].e) and torch.equal(res[2].m, alone[0].m)
    assert not torch.equal(res[1].e, res[2].e)  # another id, another draw


def test_capacity_rows_agree_with_their_files_and_the_walk_stops(tiny, docs, tmp_path):
    run, texts = make_run(tiny, tmp_path / "r.db", docs, n=2, lengths=(2, 4, 8, 16, 32))
    cfg = CapacityConfig(lengths=(2, 4, 8, 16, 32), seeds=(0,))
    summary = run_capacity(run, texts, cfg)
    rows = run.store.rows()
    lengths = sorted({r["length"] for r in rows})
    assert lengths[:2] == [2, 4] and lengths == [2, 4, 8, 16, 32][: len(lengths)]
    # the walk went past a length only if some sample reconstructed it, and stopped at the grid's end or at a
    # length no sample reconstructed
    assert all(any(r["accuracy"] >= 0.99 for r in rows if r["length"] == n) for n in lengths[:-1])
    assert lengths[-1] == 32 or all(r["accuracy"] < 0.99 for r in rows if r["length"] == lengths[-1])
    for r in rows:
        assert r["decode_accuracy"] == r["accuracy"]  # what the fitter kept is what the file decodes to
        out = decoded(tiny, run.store, r)
        target = texts[r["sample"]].tokens[r["length"]]
        assert sum(a == b for a, b in zip(out, target)) / len(target) == pytest.approx(r["accuracy"])
        assert r["h_lm_bits"] == pytest.approx(texts[r["sample"]].bits[r["length"] - 1])
        assert r["lm_correct"] == texts[r["sample"]].correct[r["length"] - 1] is not None
        assert r["decode_tokens"] > 0 and r["decode_seconds"] > 0 and r["fit_seconds"] > 0
    for s in summary.samples:
        ok = [r["length"] for r in rows if r["sample"] == s.sample and r["accuracy"] >= 0.99]
        assert s.capacity == max(ok, default=0)
    assert "capacity (longest length at accuracy >= 0.99" in summary.render()


def test_a_crashed_run_resumes_without_refitting_and_matches_a_clean_run(tiny, docs, tmp_path, monkeypatch):
    cfg = CapacityConfig(lengths=(4, 8), seeds=(0,))
    clean, texts = make_run(tiny, tmp_path / "clean.db", docs, batch_size=2, recipe=SHORT)
    run_capacity(clean, texts, cfg)

    crashed, texts = make_run(tiny, tmp_path / "r.db", docs, batch_size=1, recipe=SHORT)
    commits = []

    def die_after_two(rows):
        commits.append(rows)
        if len(commits) == 2:
            raise KeyboardInterrupt  # as if Ctrl-C came right after the second commit

    crashed.on_commit = die_after_two
    with pytest.raises(KeyboardInterrupt):
        run_capacity(crashed, texts, cfg)
    assert crashed.store.count() == 2

    seen = count_fitted(monkeypatch)
    again, texts = make_run(tiny, tmp_path / "r.db", docs, batch_size=1, recipe=SHORT)
    run_capacity(again, texts, cfg)
    rows = again.store.rows()
    assert len(seen) == len(rows) - 2  # only the unfinished texts were fitted
    assert len({tuple(r[k] for k in KEY) for r in rows}) == len(rows)
    # a row depends on its key only: resumed one at a time == fitted in one batch without a crash
    ref = {tuple(r[k] for k in KEY if k != "sample") + (r["sample"],): r for r in clean.store.rows()}
    assert len(ref) == len(rows)
    for r in rows:
        c = ref[tuple(r[k] for k in KEY if k != "sample") + (r["sample"],)]
        assert (r["accuracy"], r["steps"]) == (c["accuracy"], c["steps"])


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def full_db(tiny_dir, docs, tmp_path_factory):
    """One store holding all three experiments, as the CLI writes them."""
    db = tmp_path_factory.mktemp("res") / "r.db"
    common = ["--model", tiny_dir, "--data", docs, "--db", db, *TINY_FIT]
    r = cli("capacity", *common, "--samples", 2, "--lengths", "4,8", "--seeds", 2)
    assert r.exit_code == 0, r.output
    assert "capacity (longest length at accuracy >= 0.99" in r.output and "nats" in r.output  # nats
    r = cli("ablate", "layouts", *common, "--samples", 2, "--lengths", "1,4")
    assert r.exit_code == 0, r.output
    r = cli("ablate", "sharing", *common, "--samples", 2, "--lengths", "4", "--groups", "1,2,8")
    assert r.exit_code == 0, r.output
    return db, r.output


def test_cli_layouts_and_sharing_store_what_they_claim(tiny, full_db):
    db, sharing_out = full_db
    assert "forces the same first token" in sharing_out
    with Store(db) as st:
        lay = st.rows(experiment="layouts")
        assert len(lay) == 5 * 2 * 2  # layouts x lengths x samples
        assert {r["layout"] for r in lay} == {"e m^(N-1)", "e m^N", "e^N", "e^(N/2) m^(N/2)", "(e m)^(N/2)"}
        sh = st.rows(experiment="sharing")
        assert {r["sharing"] for r in sh} == {"m/1", "m/2", "e/1", "e/2"}  # groups of 8 > 2 samples: skipped
        assert len(sh) == 4 * 2
        for path in {r["proto_path"] for r in sh if r["sharing"] == "e/2"}:
            proto = ProtoTokens.load(db.parent / path)
            assert torch.equal(proto.e[0], proto.e[1])
            first = {toks[0] for toks in decode_tokens(tiny, proto)}
            assert len(first) == 1  # e alone decides position 0: the group shares its first output token
        for path in {r["proto_path"] for r in sh if r["sharing"] == "m/2"}:
            assert ProtoTokens.load(db.parent / path).m.shape[0] == 1


def test_rerun_of_a_finished_command_fits_nothing(tiny_dir, docs, full_db, monkeypatch):
    db, _ = full_db
    with Store(db) as st:
        before = st.count()
    seen = count_fitted(monkeypatch)
    r = cli(
        "ablate",
        "layouts",
        "--model",
        tiny_dir,
        "--data",
        docs,
        "--db",
        db,
        *TINY_FIT,
        "--samples",
        2,
        "--lengths",
        "1,4",
    )
    assert r.exit_code == 0, r.output
    assert seen == []
    with Store(db) as st:
        assert st.count() == before


def test_dry_run_prints_the_plan_and_fits_nothing(tiny_dir, docs, tmp_path, monkeypatch):
    seen = count_fitted(monkeypatch)
    db = tmp_path / "r.db"
    r = cli(
        "capacity",
        "--model",
        tiny_dir,
        "--data",
        docs,
        "--db",
        db,
        *TINY_FIT,
        "--samples",
        2,
        "--lengths",
        "4,8",
        "--seeds",
        3,
        "--batch-size",
        4,
        "--dry-run",
    )
    assert r.exit_code == 0, r.output
    assert "texts to fit: 12 (0 already in the store)" in r.output  # 2 samples x 2 lengths x 3 seeds
    assert "fit calls: 6; at most 78 steps" in r.output and "upper-bound time on cpu" in r.output
    assert seen == [] and not db.exists()


def test_capacity_with_a_shared_m_and_no_recipe_gets_the_shared_default(tiny_dir, docs, tmp_path):
    args = ["capacity", "--model", tiny_dir, "--data", docs, "--db", tmp_path / "r.db", "--samples", 2]
    r = cli(*args, "--lengths", "4", "--share", "m", "--min-chars", "300", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "share m, recipe fast-e50" in r.output
    r = cli(*args, "--lengths", "4", "--share", "m", "--min-chars", "300", "--recipe", "fast-lbfgs", "--dry-run")
    assert r.exit_code != 0 and "cannot share" in r.output  # a per-text recipe named outright is still refused


def test_report_writes_tables_and_figures(full_db, tmp_path):
    db, _ = full_db
    out = tmp_path / "rep"
    r = cli("report", "--db", db, "--out", out)
    assert r.exit_code == 0, r.output
    md = (out / "report.md").read_text()
    for heading in (
        "## Capacity per model and source",
        "## Accuracy vs length",
        "## Table 1",
        "## Table 2",
        "## Table 4",
        "H_LM at capacity (nats)",
        "decode tok/s",
    ):
        assert heading in md
    for png in ("accuracy_vs_length", "capacity", "hlm_vs_length", "layouts"):
        data = (out / f"{png}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_capacity_walk_stops_at_the_first_length_no_sample_reconstructs(tiny, docs, tmp_path):
    """No optimiser step: the random init reconstructs nothing, so only the grid's first length is fitted."""
    run, texts = make_run(tiny, tmp_path / "r.db", docs, n=2, lengths=(4, 8, 16), recipe=replace(SHORT, max_steps=0))
    summary = run_capacity(run, texts, CapacityConfig(lengths=(4, 8, 16), seeds=(0,)))
    rows = run.store.rows()
    assert {r["length"] for r in rows} == {4} and len(rows) == 2
    assert all(r["accuracy"] < 0.99 for r in rows) and [s.capacity for s in summary.samples] == [0, 0]


def test_bad_input_exits_2(tiny_dir, docs, tmp_path):
    r = cli("capacity", "--model", tiny_dir, "--data", docs, "--lengths", "4,x", "--db", tmp_path / "r.db")
    assert r.exit_code == 2 and "comma-separated integers" in r.output
    r = cli("report", "--db", tmp_path / "none.db", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "no results database" in r.output


def test_a_cli_run_killed_with_sigkill_resumes(tiny_dir, docs, tmp_path, monkeypatch):
    db = tmp_path / "r.db"
    args = [
        "capacity",
        "--model",
        tiny_dir,
        "--data",
        docs,
        "--db",
        db,
        *TINY_FIT,
        "--samples",
        8,  # after the first commit, 7+ texts remain: the kill lands before the run can finish (was 2: racy)
        "--lengths",
        "4,8",
        "--batch-size",
        1,
    ]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen(
        [sys.executable, "-m", "prototok", *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    before = 0
    while time.time() < deadline and p.poll() is None:
        if db.exists():
            with Store(db) as st:
                before = st.count()
            if before:
                break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with Store(db) as st:
        before = st.count()
    assert before >= 1
    seen = count_fitted(monkeypatch)
    r = cli(*args)
    assert r.exit_code == 0, r.output
    with Store(db) as st:
        rows = st.rows()
    assert len(seen) == len(rows) - before and len(rows) > before
    assert len({tuple(r[k] for k in KEY) for r in rows}) == len(rows)


@pytest.mark.slow
def test_real_model_capacity(real, tmp_path):
    """SmolLM2-135M, lengths 4, 8, 16, two samples of English prose. The fast recipe capped at 30 steps keeps it
    short: lengths 4 and 8 solve in ~15-25 steps (measured), 16 does not, so the walk stops there."""
    (tmp_path / "prose.txt").write_text(PROSE)
    source, samples = tx.load(str(tmp_path / "prose.txt"), 2, real, min_chars=400)
    texts = tx.prefixes(real, samples, [4, 8, 16])
    run = ex.Run(
        real,
        Store(tmp_path / "r.db"),
        "capacity",
        "smollm2-135m",
        source,
        methods.OnePass(get_recipe("fast", max_steps=30)),
        batch_size=2,
    )
    summary = run_capacity(run, texts, CapacityConfig(lengths=(4, 8, 16)))
    rows = run.store.rows()
    lengths = sorted({r["length"] for r in rows})
    assert lengths == [4, 8, 16][: len(lengths)] and len(rows) == 2 * len(lengths)
    for n in lengths[:-1]:  # the walk went on only past lengths some sample reconstructed
        assert any(r["accuracy"] >= 0.99 for r in rows if r["length"] == n)
    for r in rows:
        # SmolLM2 names a BOS (<|im_start|>) but does not add one, so H_LM has none, as hidden_capacity
        assert r["h_lm_context"] == "none" and r["h_lm_bits"] > 0
        assert r["decode_accuracy"] == r["accuracy"] and r["model_fingerprint"] == real.fingerprint
        proto = ProtoTokens.load(tmp_path / r["proto_path"])
        out = decode_tokens(real, proto)[r["proto_index"]]
        target = texts[r["sample"]].tokens[r["length"]]
        assert sum(a == b for a, b in zip(out, target)) / len(target) == pytest.approx(r["accuracy"])
    for t in texts:
        assert t.bits[3] < t.bits[7] < t.bits[15]  # H_LM grows with the prefix
    assert summary.mean >= 4  # a 135M model writes 4 tokens back from (e, m)


PROSE = """It was the best of times, it was the worst of times.

The village lay at the foot of a long green hill, and every morning the baker opened his shutters before the \
sun had cleared the ridge. Children ran past his window on their way to the schoolhouse, and the smell of warm \
bread followed them down the lane. Nobody in the village could remember a day when the shutters had stayed closed.

In the spring of that year a stranger arrived with a cart full of books. He set up a table in the square and \
offered to lend them to anyone who promised to bring them back within a month. The mayor was suspicious, the \
priest was curious, and the children were delighted. By the end of the week half the village was reading.

The river that ran beside the mill was higher than usual after the rains. The miller watched it with some \
concern, because the old wheel had been repaired twice already and the carpenter had warned him that a third \
repair would not hold. Still, the grain had to be ground, and so the wheel kept turning day and night.
"""


def test_a_prefix_warm_walk_starts_each_length_from_the_previous_solution(tiny, docs, tmp_path, monkeypatch):
    source, samples = tx.load(str(docs), 2, tiny, min_chars=300)
    texts = tx.prefixes(tiny, samples, [2, 4, 8])
    run = ex.Run(tiny, Store(tmp_path / "r.db"), "capacity", "tiny", source, methods.OnePass(FAST, "prefix"), 2)
    starts = []
    real = methods.fit_resolved

    def recording(lm, token_lists, **kw):
        starts.append((len(token_lists[0]), kw.get("warm_start")))
        return real(lm, token_lists, **kw)

    monkeypatch.setattr(methods, "fit_resolved", recording)
    run_capacity(run, texts, CapacityConfig(lengths=(2, 4, 8), seeds=(0,)))
    rows = run.store.rows()
    assert {r["recipe"] for r in rows} == {FAST.key + "+prefix-warm"}  # never mixed with cold rows
    assert all(r["evals"] >= r["steps"] + 1 for r in rows)  # the work each text cost is stored
    assert starts[0] == (2, [None, None])  # the first length draws
    for n, warm in starts[1:]:  # later lengths start from the same sample's solution one grid length shorter
        prev = {r["sample"]: r for r in rows if r["length"] == {4: 2, 8: 4}[n]}
        for (e, m), sample in zip(warm, sorted(prev)):
            proto = ProtoTokens.load(tmp_path / prev[sample]["proto_path"])
            i = prev[sample]["proto_index"]
            assert torch.equal(e, proto.e[i]) and torch.equal(m, proto.m[i])


def test_a_shared_m_prefix_walk_starts_each_group_from_the_previous_one(tiny, docs, tmp_path, monkeypatch):
    source, samples = tx.load(str(docs), 2, tiny, min_chars=300)
    texts = tx.prefixes(tiny, samples, [2, 4])
    run = ex.Run(tiny, Store(tmp_path / "r.db"), "capacity", "tiny", source, methods.OnePass(FAST, "prefix"), 2)
    starts = []
    real = methods.fit_resolved

    def recording(lm, token_lists, **kw):
        starts.append((len(token_lists[0]), kw.get("share"), kw.get("warm_start")))
        return real(lm, token_lists, **kw)

    monkeypatch.setattr(methods, "fit_resolved", recording)
    run_capacity(run, texts, CapacityConfig(lengths=(2, 4), seeds=(0,), share="m"))
    rows = run.store.rows()
    assert {r["recipe"] for r in rows} == {FAST.key + "+prefix-warm"}
    assert starts[0] == (2, "m", [None, None])  # the first length draws
    n, share, warm = starts[1]
    assert (n, share) == (4, "m")
    prev = sorted((r for r in rows if r["length"] == 2), key=lambda r: r["sample"])
    proto = ProtoTokens.load(tmp_path / prev[0]["proto_path"])
    assert proto.m.shape[0] == 1  # one shared m, handed to every text of the next group
    for (e, m), r in zip(warm, prev):
        assert torch.equal(e, proto.e[r["proto_index"]]) and torch.equal(m, proto.m[0])


def test_warm_starts_are_refused_where_they_do_not_apply(tiny_dir, docs, tmp_path):
    from prototok.errors import PrototokError
    from prototok.experiments import EXPERIMENTS, Setup, run_experiment
    from prototok.experiments.layouts import LayoutsConfig

    with pytest.raises(PrototokError, match="fits every text cold"):
        run_experiment(EXPERIMENTS["layouts"], LayoutsConfig(lengths=(2,)), Setup(data=(str(docs),), model=tiny_dir,
                       db=str(tmp_path / "r.db")), methods.OnePass(FAST, "prefix"))  # fmt: skip
    assert not (tmp_path / "r.db").exists()
    r = cli("capacity", "--model", tiny_dir, "--data", docs, "--db", tmp_path / "r.db", "--method", "cram",
            "--warm", "prefix", *TINY_FIT)  # fmt: skip
    assert r.exit_code == 2 and "starts every text cold" in r.output
