"""The learned encoder: shapes, a training step, exact resume, 2-rank DDP, checkpoints, encode/decode."""

from __future__ import annotations

import json
import socket

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from prototok import decode
from prototok.cli import main
from prototok.encoder import (
    EncoderConfig,
    ProtoEncoder,
    TrainConfig,
    amortised_encode,
    evaluate_encoder,
    load_encoder,
    one_pass_loss,
    predict_pairs,
    save_encoder,
    snippets,
    token_batch,
    train_encoder,
    training_texts,
)
from prototok.errors import PrototokError
from prototok.protofile import ProtoTokens

from .conftest import WORDS, tiny_model, tiny_tokenizer

# Sentences from the tiny tokenizer's vocabulary; 3-8 tokens per training window.
TEXTS = [" ".join(WORDS[(7 * i + j) % len(WORDS)] for j in range(6 + i % 5)) for i in range(24)]
SMALL = dict(min_len=3, max_len=8, batch_size=4, width=32, layers=1, heads=2, holdout=0.0, warmup=1, lr=3e-3)


def ids(lm, text):
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_encoder_shapes_and_padding(tiny):
    d = tiny.hidden_size
    for predict_m, m_rows in ((False, 1), (True, 3)):
        enc = ProtoEncoder(EncoderConfig.for_model(tiny, max_len=8, width=32, layers=1, heads=2, predict_m=predict_m))
        lists = [ids(tiny, t) for t in ("the cat sat", "a dog ran to the park", "bird")]
        emb, pad = token_batch(tiny, lists)
        assert emb.shape == (3, 6, d) and pad.shape == (3, 6) and pad.sum() == 18 - 10
        e, m = enc.eval()(emb, pad)
        assert e.shape == (3, d) and m.shape == (m_rows, d)
        alone, _ = enc(*token_batch(tiny, lists[:1]))  # padding never changes a text's vectors
        torch.testing.assert_close(alone[0], e[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(PrototokError, match="max_len"):
        enc(*token_batch(tiny, [list(range(2, 12))]))


def test_one_training_step_lowers_the_loss(tiny):
    torch.manual_seed(0)
    enc = ProtoEncoder(EncoderConfig.for_model(tiny, max_len=8, width=32, layers=1, heads=2))
    opt = torch.optim.AdamW(enc.parameters(), lr=1e-2)
    lists = [ids(tiny, t)[:8] for t in TEXTS[:4]]

    def loss():
        return one_pass_loss(tiny, *enc(*token_batch(tiny, lists)), lists, enc.cfg.lay)[0].mean()

    before = loss()
    before.backward()
    opt.step()
    assert loss().item() < before.item()


def _weights(folder):
    return load_file(folder / "encoder.safetensors")


def test_resume_continues_exactly(tiny, tmp_path):
    cfg = TrainConfig(steps=4, ckpt_every=2, log_every=1, dropout=0.1, **SMALL)  # dropout: the RNG must resume too
    straight = train_encoder(cfg, TEXTS, tmp_path / "a", lm=tiny, progress=False)
    train_encoder(cfg, TEXTS, tmp_path / "b", lm=tiny, progress=False, stop_at=2)
    assert [line.count('"step"') for line in (tmp_path / "b/train_log.jsonl").read_text().splitlines()] == [1, 1]
    with pytest.raises(PrototokError, match="--resume"):
        train_encoder(cfg, TEXTS, tmp_path / "b", lm=tiny, progress=False)
    with pytest.raises(PrototokError, match="lr="):
        train_encoder(
            TrainConfig(steps=4, dropout=0.1, **SMALL | {"lr": 1e-3}), TEXTS, tmp_path / "b", lm=tiny, resume=True
        )
    resumed = train_encoder(cfg, TEXTS, tmp_path / "b", lm=tiny, progress=False, resume=True)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert straight.metrics == {**resumed.metrics, "seconds": straight.metrics["seconds"]}
    assert len((tmp_path / "b/train_log.jsonl").read_text().splitlines()) == 4
    timed = train_encoder(cfg, TEXTS, tmp_path / "c", lm=tiny, progress=False, max_minutes=0)  # a wall-time budget
    assert timed.metrics["step"] == 1 and json.loads((tmp_path / "c/encoder.json").read_text())["step"] == 1


def test_keep_every_keeps_loadable_weights_per_step(tiny, tmp_path):
    cfg = TrainConfig(steps=4, ckpt_every=4, log_every=1, **SMALL)
    train_encoder(cfg, TEXTS, tmp_path / "k", lm=tiny, progress=False, keep_every=2)
    kept = sorted(p.name for p in (tmp_path / "k").glob("step-*"))
    assert kept == ["step-000002", "step-000004"]
    assert json.loads((tmp_path / "k/step-000002/encoder.json").read_text())["step"] == 2
    early, last = _weights(tmp_path / "k/step-000002"), _weights(tmp_path / "k")
    assert torch.equal(_weights(tmp_path / "k/step-000004")["query"], last["query"])
    assert not torch.equal(early["query"], last["query"])  # a snapshot, not a link to the latest
    load_encoder(tmp_path / "k/step-000002", tiny)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, lm, out, cfg):
    import os

    torch.set_num_threads(1)  # 2 ranks on a 2-core machine; also keeps the forked child off OpenMP's pool
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    res = train_encoder(cfg, TEXTS, out, lm=lm, device="cpu", progress=False)
    torch.save(res.encoder.state_dict(), out / f"rank{rank}.pt")


def _log(folder):
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


def test_ddp_two_ranks_on_cpu_match_each_other_and_one_process(tiny, tmp_path):
    """gloo, 2 ranks forked from this process (the tiny model comes along; spawn would re-import for ~30 s)."""
    cfg = TrainConfig(steps=3, ckpt_every=3, log_every=1, **SMALL)
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    ddp.mkdir()
    args = (2, _free_port(), tiny, ddp, cfg)
    torch.multiprocessing.start_processes(_ddp_worker, args=args, nprocs=2, join=True, start_method="fork")
    r0, r1 = (torch.load(ddp / f"rank{r}.pt") for r in (0, 1))
    saved = _weights(ddp)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
        assert torch.equal(r0[k], saved[k]), k
    # the same global batch in one process: the same losses, up to the order of the gradient sums
    train_encoder(cfg, TEXTS, single, lm=tiny, progress=False)
    for a, b in zip(_log(ddp), _log(single), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4) and a["accuracy"] == pytest.approx(b["accuracy"])


def test_checkpoint_refuses_another_model(tiny, tmp_path):
    from prototok.models import prepare

    enc = ProtoEncoder(EncoderConfig.for_model(tiny, max_len=8, width=32, layers=1, heads=2))
    save_encoder(enc, tmp_path, {"step": 0})
    assert load_encoder(tmp_path / "encoder.safetensors", tiny).cfg == enc.cfg
    other = prepare("other", tiny_model(seed=1), tiny_tokenizer(), "cpu")
    with pytest.raises(PrototokError, match="trained for model") as err:
        load_encoder(tmp_path, other)
    assert tiny.fingerprint[:12] in str(err.value) and other.fingerprint[:12] in str(err.value)
    with pytest.raises(PrototokError, match="trained for model"):
        amortised_encode(other, tmp_path, ["the cat"])
    with pytest.raises(PrototokError, match="not an encoder checkpoint"):
        load_encoder(tmp_path / "nowhere", tiny)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc")
    train_encoder(TrainConfig(steps=6, ckpt_every=3, **SMALL), TEXTS, out, lm=tiny, progress=False)
    return out


def test_amortised_encode_decodes(tiny, trained, tmp_path):
    texts = ["the cat sat on the mat", "bird sang"]
    proto = amortised_encode(tiny, trained, texts)
    assert proto.e.shape == (2, tiny.hidden_size) and proto.m.shape == (1, tiny.hidden_size)
    assert proto.steps == [0, 0] and proto.extra["encoder_step"] == 6
    out = decode(ProtoTokens.load(proto.save(tmp_path / "p.safetensors")), tiny, references=texts)
    assert [len(d.tokens) for d in out] == proto.lengths == [6, 2]
    assert [d.accuracy for d in out] == pytest.approx(proto.accuracy)

    refined = amortised_encode(tiny, trained, texts, refine_steps=40, recipe="paper")
    assert refined.m.shape == (2, tiny.hidden_size)
    assert all(s <= 40 for s in refined.steps)
    assert all(r >= a for r, a in zip(refined.accuracy, proto.accuracy))
    assert [d.accuracy for d in decode(refined, tiny, references=texts)] == pytest.approx(refined.accuracy)
    with pytest.raises(PrototokError, match="layout"):
        amortised_encode(tiny, trained, texts, layout="e m^N")
    with pytest.raises(PrototokError, match="at most 8"):
        amortised_encode(tiny, trained, [" ".join(WORDS[:12])])


def test_a_longer_text_is_refined_from_its_prefix(tiny, trained):
    long = [" ".join(WORDS[:12])]
    enc = load_encoder(trained, tiny)
    toks = ids(tiny, long[0])
    assert len(toks) > enc.cfg.max_len
    e, m = predict_pairs(tiny, enc, [toks])
    e8, m8 = predict_pairs(tiny, enc, [toks[: enc.cfg.max_len]])
    assert torch.equal(e, e8) and torch.equal(m, m8)  # read through its first max_len tokens
    refined = amortised_encode(tiny, trained, long, refine_steps=5, recipe="paper")
    assert refined.lengths == [len(toks)] and refined.steps[0] <= 5
    res = evaluate_encoder(tiny, trained, long, max_steps=5)
    assert res["per_text"][0]["tokens"] == len(toks)
    with pytest.raises(PrototokError, match="at most 8"):
        evaluate_encoder(tiny, trained, long, fits=False)


def test_evaluate_encoder_reports_warm_vs_cold(tiny, trained):
    res = evaluate_encoder(tiny, trained, ["the cat sat", "a dog ran to the park"], max_steps=30)
    assert set(res["amortised"]["by_length"]) == {"3", "6"}
    f = res["fits"]
    assert f["max_steps"] == 30 and {"warm", "cold", "warm_over_cold_steps"} <= set(f)
    assert -1 <= res["distance"]["amortised_to_cold"]["cos_e"] <= 1
    assert len(res["per_text"]) == 2 and "warm_steps" in res["per_text"][0]
    for phase in ("warm", "cold"):  # the work in forward+backward passes, whatever the optimiser
        evals = sorted(row[f"{phase}_evaluations"] for row in res["per_text"])
        assert f[phase]["median_evaluations"] == (evals[0] + evals[1]) / 2 and evals[0] >= 1
    assert f["warm_over_cold_median_evaluations"] == f["warm"]["median_evaluations"] / f["cold"]["median_evaluations"]


def test_cli_train_resume_and_eval(tiny, tiny_dir, tmp_path):
    data = tmp_path / "corpus.txt"
    data.write_text("\n".join(TEXTS) + "\n")
    out = tmp_path / "ck"
    base = ["encoder", "train", "--model", str(tiny_dir), "--data", str(data), "--out", str(out), "--device", "cpu"]
    base += ["--min-len", "3", "--max-len", "8", "--batch-size", "4", "--width", "32", "--layers", "1"]
    base += ["--heads", "2", "--holdout", "0", "--steps", "4"]
    r = CliRunner().invoke(main, base + ["--stop-at", "2"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, base + ["--resume"])
    assert r.exit_code == 0 and "step 4" in r.output, r.output
    r = CliRunner().invoke(
        main,
        ["encoder", "eval", str(out), "--data", str(data), "--split", "all", "--texts", "3"]
        + ["--min-len", "3", "--steps", "5", "--device", "cpu", "--json"],
    )
    assert r.exit_code == 0, r.output
    assert '"warm_over_cold_steps"' in r.output
    r = CliRunner().invoke(main, ["encoder", "train", "--data", str(tmp_path / "missing.txt"), "--out", str(out)])
    assert r.exit_code == 2 and "no such file" in r.output


def test_eval_reads_held_out_windows_with_the_training_seed(tiny, tiny_dir, tmp_path, monkeypatch):
    """A source's windows depend on the data seed; the hash split holds out only texts of training's windows."""
    import prototok.encoder as encoder_pkg

    data = tmp_path / "corpus.txt"
    data.write_text("\n".join(TEXTS) + "\n")
    out = tmp_path / "ck"
    train = ["encoder", "train", "--model", str(tiny_dir), "--data", str(data), "--out", str(out), "--device", "cpu"]
    train += ["--min-len", "3", "--max-len", "8", "--batch-size", "4", "--width", "32", "--layers", "1"]
    train += ["--heads", "2", "--holdout", "0.5", "--steps", "1", "--seed", "7"]
    r = CliRunner().invoke(main, train)
    assert r.exit_code == 0, r.output
    seen = []
    real = encoder_pkg.training_texts

    def spy(specs, samples=5000, seed=0):
        seen.append(seed)
        return real(specs, samples, seed)

    monkeypatch.setattr(encoder_pkg, "training_texts", spy)
    base = ["encoder", "eval", str(out), "--data", str(data), "--texts", "2", "--min-len", "3", "--no-fits"]
    base += ["--device", "cpu", "--seed", "3"]
    for split, want in (("heldout", 7), ("all", 3)):
        r = CliRunner().invoke(main, base + ["--split", split])
        assert r.exit_code == 0, r.output
        assert seen[-1] == want, (split, seen)


def test_the_chosen_design_lowers_the_held_out_loss(tiny, tmp_path):
    """The training run's design (the LM reads the text at a middle layer, e at 50x): texts it never trained on
    are encoded better after training than after its first step."""
    held_out = [" ".join(WORDS[(11 * i + 5 * j + 3) % len(WORDS)] for j in range(8)) for i in range(6)]
    assert not set(held_out) & set(TEXTS)
    cfg = TrainConfig(steps=40, ckpt_every=40, log_every=40, reader="lm", reader_layer=1, e_scale=50.0, **SMALL)
    train_encoder(cfg, TEXTS, tmp_path / "first", lm=tiny, progress=False, stop_at=1)
    train_encoder(cfg, TEXTS, tmp_path / "last", lm=tiny, progress=False)
    first, last = (evaluate_encoder(tiny, tmp_path / k, held_out, fits=False)["amortised"] for k in ("first", "last"))
    assert last["loss"] < first["loss"] - 0.2, (first, last)  # 4.99 -> 4.67 nats per token here


def test_snippets_and_training_texts(tiny, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a.txt").write_text("the cat sat on the mat\n\nbird sang in morning sun\n")
    texts = training_texts([str(tmp_path / "d"), "the dog ran"])
    assert texts == ["the cat sat on the mat", "bird sang in morning sun", "the dog ran"]
    cut = snippets(tiny, texts, 2, 4, 3)
    assert sorted(len(ids(tiny, t)) for t in cut) == [2, 3, 4]


def test_the_lm_reader_reads_hidden_states_and_scales_e(tiny):
    """reader "lm": the frozen LM's own hidden states (causal: padding never changes a text's rows), layer-
    normalised before the encoder; e_scale multiplies e (fast-e50's 50x), not m."""
    lists = [ids(tiny, t) for t in ("the cat sat", "a dog ran to the park")]
    feats, pad = token_batch(tiny, lists, "lm", -1)
    want = tiny.model.base_model(input_ids=torch.tensor([lists[1]]), output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(feats[1], want[0], atol=1e-5, rtol=1e-5)
    alone, _ = token_batch(tiny, lists[:1], "lm", 1)
    torch.testing.assert_close(alone[0], token_batch(tiny, lists, "lm", 1)[0][0, :3], atol=1e-5, rtol=1e-5)
    kw = dict(max_len=8, width=32, layers=1, heads=2, reader="lm")
    torch.manual_seed(0)
    one = ProtoEncoder(EncoderConfig.for_model(tiny, **kw)).eval()
    torch.manual_seed(0)
    fifty = ProtoEncoder(EncoderConfig.for_model(tiny, e_scale=50.0, **kw)).eval()
    (e1, m1), (e50, m50) = one(feats, pad), fifty(feats, pad)
    torch.testing.assert_close(e50, 50 * e1)
    torch.testing.assert_close(m50, m1)
    for bad in (dict(reader="tokens"), dict(e_scale=0.0), dict(e_scale=float("nan"))):
        with pytest.raises(ValueError):
            EncoderConfig.for_model(tiny, **{**kw, **bad})


def test_an_lm_reader_encoder_trains_resumes_and_round_trips(tiny, tmp_path):
    """Training lowers the loss on the batches it saw; a checkpoint stores the reader, loads and encodes."""
    cfg = TrainConfig(steps=12, ckpt_every=6, log_every=6, reader="lm", e_scale=20.0, **SMALL)
    res = train_encoder(cfg, TEXTS, tmp_path / "lm", lm=tiny, progress=False)
    log = _log(tmp_path / "lm")
    assert log[-1]["loss"] < log[0]["loss"]
    enc = load_encoder(tmp_path / "lm", tiny)
    assert enc.cfg.reader == "lm" and enc.cfg.e_scale == 20.0
    for k, v in res.encoder.state_dict().items():
        assert torch.equal(v, enc.state_dict()[k]), k
    half = train_encoder(cfg, TEXTS, tmp_path / "half", lm=tiny, progress=False, stop_at=6)
    again = train_encoder(cfg, TEXTS, tmp_path / "half", lm=tiny, progress=False, resume=True)
    assert half.metrics["step"] == 6 and again.metrics["loss"] == res.metrics["loss"]
