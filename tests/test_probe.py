"""Probing (analysis/probe.py): greedy generation with proto-tokens as a prompt, [e, m] and [BOS, e, m],
against a plain restatement (full forward per token, no cache), and its scores."""

import pytest
import torch

from prototok.analysis.probe import probe
from prototok.errors import PrototokError

from .test_cram import with_bos


def restated(lm, prefix_vectors, n):
    """Greedy decoding by recomputing the whole prompt every step (no KV cache)."""
    emb = lm.model.get_input_embeddings()
    x, out = prefix_vectors[None], []
    with torch.no_grad():
        for _ in range(n):
            tok = lm.model(inputs_embeds=x).logits[0, -1].argmax()
            out.append(int(tok))
            x = torch.cat([x, emb(tok[None])[None]], dim=1)
    return out


def test_probe_generates_from_the_proto_tokens_with_and_without_bos(tiny):
    g = torch.Generator().manual_seed(0)
    e, m = torch.randn(2, tiny.hidden_size, generator=g), torch.randn(1, tiny.hidden_size, generator=g)
    text = [[3, 4, 5, 6, 7], [8, 9, 10]]
    (p0, p1) = probe(tiny, e, m, text, "e m")
    assert p0.tokens == restated(tiny, torch.stack([e[0], m[0]]), 5) and len(p1.tokens) == 3
    assert p1.tokens == restated(tiny, torch.stack([e[1], m[0]]), 3)
    lm = with_bos(tiny)  # BOS "<pad>" (id 1)
    (b0,) = probe(lm, e[:1], m, text[:1], "BOS e m")
    bos = lm.model.get_input_embeddings().weight[1]
    assert b0.tokens == restated(lm, torch.stack([bos, e[0], m[0]]), 5)
    with pytest.raises(PrototokError, match="names no BOS"):
        probe(tiny, e[:1], m, text[:1], "BOS e m")


def test_probe_scores_accuracy_and_leading_match(tiny):
    e, m = torch.randn(1, tiny.hidden_size), torch.randn(1, tiny.hidden_size)
    (first,) = probe(tiny, e, m, [[0] * 6], "e m")
    gen = first.tokens
    (same,) = probe(tiny, e, m, [gen], "e m")
    assert same.accuracy == 1.0 and same.prefix == 6
    other = list(gen)
    other[2] = (other[2] + 1) % 64
    (off,) = probe(tiny, e, m, [other], "e m")
    assert off.prefix == 2 and off.accuracy == pytest.approx(5 / 6)
