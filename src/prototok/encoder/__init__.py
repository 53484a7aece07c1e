"""A learned encoder: text -> (e, m) in one pass of a small network, trained end to end through the frozen LM,
so a text's proto-tokens cost one forward pass instead of a per-text fit (or give the fit a warm start).

model.py the network and its loss (the fitter's); checkpoint.py save/load, tied to one LM by fingerprint;
train.py the training run (torchrun data parallel, exact resume); infer.py amortised_encode and
eval_texts, evaluate_encoder; train_encoder runs a training.
"""

from .checkpoint import (
    check_encoder_model,
    config_from_meta,
    from_pretrained,
    load_encoder,
    pull_encoder,
    push_encoder,
    read_meta,
    save_encoder,
)
from .infer import amortised_encode, eval_texts, evaluate_encoder, predict_pairs
from .model import EncoderConfig, ProtoEncoder, one_pass_loss, token_batch
from .train import (
    ENCODER_MIN_CHARS,
    Corpus,
    TrainConfig,
    TrainResult,
    is_heldout,
    snippets,
    train_encoder,
    training_texts,
)

__all__ = [
    "ENCODER_MIN_CHARS",
    "Corpus",
    "EncoderConfig",
    "ProtoEncoder",
    "TrainConfig",
    "TrainResult",
    "amortised_encode",
    "check_encoder_model",
    "config_from_meta",
    "eval_texts",
    "from_pretrained",
    "evaluate_encoder",
    "is_heldout",
    "load_encoder",
    "one_pass_loss",
    "predict_pairs",
    "pull_encoder",
    "push_encoder",
    "read_meta",
    "training_texts",
    "save_encoder",
    "snippets",
    "token_batch",
    "train_encoder",
]
