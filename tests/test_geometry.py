import pytest
import torch

from prototok import fit
from prototok.analysis.distances import cosine_distances, solution_pairs, summarize_distances
from prototok.analysis.paths import arc_length, bezier_points, connect, line_points, point, point_scores
from prototok.analysis.vectors import describe, nearest_tokens
from prototok.recipes import get_recipe

FAST = get_recipe("paper", lr=0.1, max_steps=300)
TEXT = "the cat sat on the mat"


def ids(lm, text):
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def two_solutions(tiny):
    sols = [fit(tiny, [ids(tiny, TEXT)], recipe=FAST, seed=seed)[0] for seed in (0, 1)]
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
    # the experiment's stored rows walk the pairs in this order, i < j
    pairs = solution_pairs(texts, contexts)
    assert [(i, j) for i, j, _ in pairs[:6]] == [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 2)]
    assert [k for i, j, k in pairs if (i, j) in ((0, 1), (0, 2), (0, 4))] == [
        "same-text",
        "same-context",
        "different-context",
    ]
    one = summarize_distances(dist[:2, :2], [0, 0])  # a single pair: its spread is 0, not undefined
    assert (one["same-text"].count, one["same-text"].std) == (1, 0.0) and one["same-context"].count == 0


def test_trained_bezier_curve_has_loss_no_higher_than_the_line(tiny, two_solutions):
    toks = ids(tiny, TEXT)
    p0, p1 = (point(r.e, r.m) for r in two_solutions)
    c = connect(tiny, toks, p0, p1, points=9, steps=25, lr=0.05)
    assert c.curve_accuracy[0] == c.line_accuracy[0] == 1.0 and c.curve_accuracy[-1] == c.line_accuracy[-1] == 1.0
    assert sum(c.curve_loss) <= sum(c.line_loss)
    assert c.length_ratio >= 1.0 and 0 < c.cosine_distance <= 2
    assert len(c.bezier.losses) == 25
    stored = c.record()  # what the geometry table keeps of a path
    assert stored["curve_loss"] == c.curve_loss and stored["bezier_final_loss"] == c.bezier.losses[-1]
    # the path's endpoints are the solutions themselves: their losses match a direct evaluation
    loss, acc = point_scores(tiny, toks, torch.stack([p0, p1]))
    assert torch.allclose(loss, torch.tensor([c.line_loss[0], c.line_loss[-1]]), atol=1e-5)


def test_nearest_tokens_of_an_embedding_row_is_that_token(tiny, two_solutions):
    table = tiny.model.get_input_embeddings().weight
    cos, tok = nearest_tokens(tiny, table[[5, 9]] * 2.5, k=3)
    assert tok[:, 0].tolist() == [5, 9] and torch.allclose(cos[:, 0], torch.ones(2), atol=1e-5)
    (rep,) = describe(tiny, two_solutions[0].e[None], two_solutions[0].m[None], k=2)
    assert rep.e.norm == pytest.approx(float(two_solutions[0].e.norm()))
    assert len(rep.m.nearest_tokens) == 2 and rep.m.cosine[0] >= rep.m.cosine[1]
    stored = rep.record()  # what the geometry table keeps of a solution
    assert stored["e_norm"] == rep.e.norm and stored["m_nearest"] == rep.m.nearest_tokens
    assert stored["m_cos"] == [round(c, 4) for c in rep.m.cosine]
