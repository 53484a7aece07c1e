import pytest
import torch

from prototok import fit
from prototok.analysis.geometry import (
    arc_length,
    bezier_points,
    connect,
    cosine_distances,
    describe,
    fit_seeds,
    line_points,
    nearest_tokens,
    point,
    point_scores,
    summarize_distances,
)
from prototok.recipes import DEFAULT_RECIPE, get_recipe

FAST = get_recipe("paper", lr=0.1, max_steps=300)
TEXT = "the cat sat on the mat"


def ids(lm, text):
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def two_solutions(tiny):
    (sols,) = fit_seeds(tiny, [ids(tiny, TEXT)], seeds=[0, 1], recipe=FAST)
    assert all(r.solved for r in sols)
    return sols


def test_bezier_curve_passes_through_both_endpoints_exactly():
    g = torch.Generator().manual_seed(0)
    p0, theta, p1 = (torch.randn(16, generator=g) * 5 for _ in range(3))
    ends = torch.tensor([0.0, 1.0])
    b = bezier_points(p0, theta, p1, ends)
    assert torch.equal(b[0], p0) and torch.equal(b[1], p1)
    line = line_points(p0, p1, ends)
    assert torch.equal(line[0], p0) and torch.equal(line[1], p1)
    # with theta at the midpoint the curve is the line, and its length is the line's
    taus = torch.linspace(0, 1, 7)
    mid = (p0 + p1) / 2
    assert torch.allclose(bezier_points(p0, mid, p1, taus), line_points(p0, p1, taus), atol=1e-5)
    assert arc_length(p0, mid, p1) == pytest.approx(float((p1 - p0).norm()), rel=1e-5)
    assert arc_length(p0, theta, p1) > float((p1 - p0).norm())


def test_cosine_distance_matrix_is_symmetric_with_zero_diagonal():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 32, generator=g)
    x = torch.cat([x, 3 * x[:1], -x[:1], torch.eye(32)[:2]])  # a rescaled copy, an opposite, two orthogonals
    dist = cosine_distances(x)
    assert torch.equal(dist, dist.T) and torch.equal(dist.diagonal(), torch.zeros(len(x)))
    assert dist[0, 7] == pytest.approx(0, abs=1e-6) and dist[0, 8] == pytest.approx(2, abs=1e-6)
    assert dist[9, 10] == pytest.approx(1, abs=1e-6) and bool((dist >= 0).all())


def test_distances_are_grouped_by_text_and_context():
    dist = cosine_distances(torch.randn(6, 8, generator=torch.Generator().manual_seed(0)))
    texts = [0, 0, 1, 1, 2, 2]  # two solutions of each of three texts
    contexts = [0, 0, 0, 0, 1, 1]  # texts 0 and 1 continue one shared context
    s = summarize_distances(dist, texts, contexts)
    assert (s["same-text"].count, s["same-context"].count, s["different-context"].count) == (3, 4, 8)
    assert s["same-text"].mean == pytest.approx(float((dist[0, 1] + dist[2, 3] + dist[4, 5]) / 3))
    no_contexts = summarize_distances(dist, texts)  # one context per text
    assert no_contexts["same-context"].count == 0 and no_contexts["different-context"].count == 12


def test_seeds_batched_together_give_what_separate_fits_give(tiny):
    lists = [ids(tiny, TEXT), ids(tiny, "bird sang")]
    rec = get_recipe(DEFAULT_RECIPE, max_steps=5)  # the default's own init (e may be drawn at another scale)
    together = fit_seeds(tiny, lists, seeds=[3, 4], recipe=rec)
    for j, seed in enumerate([3, 4]):
        alone = fit(tiny, lists, recipe=rec, seed=seed)
        for i in range(2):
            assert together[i][j].index == i and together[i][j].steps == alone[i].steps
            assert torch.allclose(together[i][j].e, alone[i].e, atol=1e-4)
    assert not torch.equal(together[0][0].e, together[0][1].e)


def test_trained_bezier_curve_has_loss_no_higher_than_the_line(tiny, two_solutions):
    toks = ids(tiny, TEXT)
    p0, p1 = (point(r) for r in two_solutions)
    c = connect(tiny, toks, p0, p1, points=9, steps=25, lr=0.05)
    assert c.curve_accuracy[0] == c.line_accuracy[0] == 1.0 and c.curve_accuracy[-1] == c.line_accuracy[-1] == 1.0
    assert sum(c.curve_loss) <= sum(c.line_loss)
    assert c.length_ratio >= 1.0 and 0 < c.cosine_distance <= 2
    assert len(c.bezier.losses) == 25
    # the path's endpoints are the solutions themselves: their losses match a direct evaluation
    loss, acc = point_scores(tiny, toks, torch.stack([p0, p1]))
    assert torch.allclose(loss, torch.tensor([c.line_loss[0], c.line_loss[-1]]), atol=1e-5)


def test_nearest_tokens_of_an_embedding_row_is_that_token(tiny, two_solutions):
    table = tiny.model.get_input_embeddings().weight
    cos, tok = nearest_tokens(tiny, table[[5, 9]] * 2.5, k=3)
    assert tok[:, 0].tolist() == [5, 9] and torch.allclose(cos[:, 0], torch.ones(2), atol=1e-5)
    (rep,) = describe(tiny, two_solutions[:1], k=2)
    assert rep.e.norm == pytest.approx(float(two_solutions[0].e.norm()))
    assert len(rep.m.nearest_tokens) == 2 and rep.m.cosine[0] >= rep.m.cosine[1]
