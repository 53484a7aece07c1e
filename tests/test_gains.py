"""hidden_capacity's Token Gain and Information Gain (analysis/gains.py): the frozen model's own scores as
train.py computes them (original_loss, original_accuracy), restated, against what prototok stores per row."""

import math

import pytest
import torch

from prototok.analysis.gains import gains, max_length, summary
from prototok.experiments.texts import lm_scores
from prototok.tokens import tokenize

from .test_cram import with_bos


def hc_original(lm, text):
    """train.py: orig_output = model(**inp, labels=input_ids); orig_loss, calculate_accuracy(logits, input_ids)."""
    ids = torch.tensor([lm.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits
    shift, labels = logits[:, :-1], ids[:, 1:]
    loss = torch.nn.functional.cross_entropy(shift.reshape(-1, shift.shape[-1]).float(), labels.reshape(-1))
    return loss.item(), (shift.argmax(-1) == labels).float().mean().item(), ids.shape[1]


@pytest.mark.parametrize("bos", [False, True], ids=["no-bos", "bos"])
def test_gains_match_hidden_capacitys_formulas(tiny, bos):
    lm = with_bos(tiny) if bos else tiny
    text = "a b c d e f g a b c"
    orig_loss, orig_acc, their_length = hc_original(lm, text)
    tokens = tokenize(lm.tokenizer, text)
    bits, correct, ctx = lm_scores(lm, tokens)
    row = {"length": len(tokens), "h_lm_bits": bits[-1], "h_lm_context": ctx, "lm_correct": correct[-1]}
    row |= {"loss": 0.25, "accuracy": 0.9}  # the fit's best, as stored
    assert max_length(row) == their_length  # their max_length counts the BOS
    g = gains(row)
    assert g.information == pytest.approx((orig_loss - 0.25) * their_length, rel=1e-5)
    assert g.tokens == pytest.approx((0.9 - orig_acc) * their_length, rel=1e-6)


def test_gains_summary_averages_the_texts_not_reconstructed():
    base = {"length": 9, "h_lm_bits": 8 / math.log(2), "h_lm_context": "none", "lm_correct": 2}
    rows = [
        base | {"loss": 0.5, "accuracy": 0.5},
        base | {"loss": 0.0, "accuracy": 1.0},
        base | {"loss": 0.5, "accuracy": 0.5},
    ]
    s = summary(rows, 0.99)
    assert s["texts"] == 2  # the reconstructed one is left out, as the notebook's table does
    assert s["information"] == pytest.approx(((1.0 - 0.5) * 9, 0.0))  # 8 nats over 8 predicted positions
    assert s["tokens"] == pytest.approx(((0.5 - 2 / 8) * 9, 0.0))
    assert gains(base | {"lm_correct": None, "loss": 0, "accuracy": 0}) is None  # rows stored before the column
