"""Long texts through their own prefixes (prototok.walk), on the tiny model."""

from __future__ import annotations

import pytest
import torch

from prototok import decode, encode
from prototok.errors import PrototokError
from prototok.layouts import get_layout
from prototok.onepass import decode_vectors
from prototok.recipes import DEFAULT_RECIPE, get_recipe
from prototok.walk import GRID, fit_walk, walk_lengths

LAY = get_layout("e m^(N-1)")
REC = get_recipe(DEFAULT_RECIPE, max_steps=400)


def test_walk_lengths_climb_the_grid_to_the_text():
    assert walk_lengths(100) == [4, 5, 8, 11, 16, 22, 32, 45, 64, 90, 100]
    assert walk_lengths(90) == [4, 5, 8, 11, 16, 22, 32, 45, 64, 90]
    assert walk_lengths(4) == [4] and walk_lengths(3) == [3]
    assert GRID[:3] == (4, 5, 8)


def test_fit_walk_reconstructs_each_text_and_counts_the_whole_walk(tiny):
    texts = [[(7 * i + 3) % 60 + 2 for i in range(n)] for n in (20, 12)]
    seen = []
    res = fit_walk(tiny, texts, LAY, REC, seed=0, on_length=lambda n, rs: seen.append((n, [r.steps_run for r in rs])))
    assert [r.index for r in res] == [0, 1] and [r.tokens for r in res] == texts
    assert [(n, len(runs)) for n, runs in seen] == [(4, 2), (5, 2), (8, 2), (11, 2), (12, 1), (16, 1), (20, 1)]
    for r, toks in zip(res, texts):
        assert r.solved and r.accuracy == 1.0
        out = decode_vectors(tiny, r.e.unsqueeze(0), r.m.unsqueeze(0), LAY, [len(toks)])
        assert out == [toks]
    # steps_run counts every length's evaluations: text 1 is second at lengths 4..11 and alone at 12
    assert res[1].steps_run == sum(runs[1] for n, runs in seen if n < 12) + dict(seen)[12][0]
    assert res[0].steps_run == sum(runs[0] for n, runs in seen if n != 12)


def test_walk_progress_counts_whole_texts_and_names_the_prefix(tiny):
    texts = [[(7 * i + 3) % 60 + 2 for i in range(n)] for n in (20, 12)]
    seen = []
    fit_walk(tiny, texts, LAY, REC, seed=0, progress=seen.append)
    assert seen and all(p.total == 2 for p in seen)
    assert [p.prefix for p in seen] == sorted(p.prefix for p in seen)  # the walk climbs
    assert {p.prefix for p in seen} <= {4, 5, 8, 11, 12, 16, 20} and seen[-1].prefix == 20
    assert all(p.done == 0 for p in seen if p.prefix <= 11)  # a solved prefix is not a finished text
    assert [p.done for p in seen if p.prefix == 20][-1] == 1  # text 1 ended at 12; text 0 is still fitting


def test_every_length_runs_under_the_walk_cap_then_the_text_takes_the_rest(tiny, monkeypatch):
    """Every length, the whole text's too, first runs with at most PREFIX_CAP evaluations (as the measured walks
    ran, so the recipe's redraw rule is judged against that cap); an unsolved whole text then goes on from its
    best with the rest of the recipe's max_steps."""
    import prototok.walk as walk

    calls, rules = [], []
    real = walk.fit_resolved

    def spy(lm, toks, lay, rec, **kw):
        res = real(lm, toks, lay, rec, **kw)
        calls.append((len(toks[0]), rec.max_steps, kw["warm_start"][0] is not None, res[0]))
        rules.append(rec.redraw_affordable(rec.max_steps, len(toks[0]), warm=True))
        return res

    monkeypatch.setattr(walk, "fit_resolved", spy)
    text = [(7 * i + 3) % 60 + 2 for i in range(20)]
    monkeypatch.setattr(walk, "PREFIX_CAP", 3)  # too few to solve 20 tokens: the text must go on
    (res,) = fit_walk(tiny, [text], LAY, get_recipe(DEFAULT_RECIPE, max_steps=400))
    assert [(n, cap) for n, cap, _, _ in calls[:-1]] == [(n, 3) for n in (4, 5, 8, 11, 16, 20)]
    n, cap, warm, last = calls[-1]
    first20 = calls[-2][3]
    assert (n, warm) == (20, True) and not first20.solved and cap == 400 - first20.steps_run
    assert res.solved and res.steps_run == sum(r.steps_run for *_, r in calls)
    assert rules[-1] is False  # the continuation refines its start: no budget left is enough to redraw it


def test_a_short_budget_is_not_extended(tiny, monkeypatch):
    import prototok.walk as walk

    caps = []
    real = walk.fit_resolved

    def spy(lm, toks, lay, rec, **kw):
        caps.append((len(toks[0]), rec.max_steps))
        return real(lm, toks, lay, rec, **kw)

    monkeypatch.setattr(walk, "fit_resolved", spy)
    fit_walk(tiny, [[(7 * i + 3) % 60 + 2 for i in range(20)]], LAY, get_recipe(DEFAULT_RECIPE, max_steps=2))
    assert caps == [(n, 2) for n in (4, 5, 8, 11, 16, 20)]  # max_steps below the cap: one fit per length


def test_encode_walks_long_texts_only_and_says_so(tiny, monkeypatch):
    """encode walks a text longer than WALK_ABOVE tokens (here patched to 6), fits shorter ones cold exactly as
    before (the same init stream: its index in the call), and records which walked; walk=False: none."""
    import importlib

    import prototok.walk as walk

    enc = importlib.import_module("prototok.encode")
    monkeypatch.setattr(enc, "WALK_ABOVE", 6)
    texts = ["the cat sat on the mat and then slept", "bird sang"]
    proto = encode(texts, tiny, recipe=REC)
    assert proto.extra["walked"] == [True, False] and proto.accuracy == [1.0, 1.0]
    cold = encode(texts, tiny, recipe=REC, walk=False)
    assert "walked" not in cold.extra
    # the short text as before: same init stream, same steps; vectors equal up to the padded batch's float noise
    assert torch.allclose(proto.e[1], cold.e[1], rtol=1e-3, atol=1e-2)
    assert proto.steps[1] == cold.steps[1]
    assert [d.text for d in decode(proto, tiny)] == texts
    assert proto.lengths[0] == 9 and walk.walk_lengths(9) == [4, 5, 8, 9]
    with pytest.raises(PrototokError, match="prefix walk"):
        encode(texts, tiny, recipe="fast-e50", share="m", walk=True)
