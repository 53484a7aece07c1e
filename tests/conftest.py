"""Fixtures: a tiny Llama built from a config (mechanics) and the real default model (end to end)."""

from __future__ import annotations

import os
import random

import pytest
import torch

WORDS = (
    "the a cat dog sat on mat ran to park and then slept under tree bird sang song in morning sun was warm "
    "river flowed past old mill children played near water quiet evening came stars shone bright over hills"
).split()


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<pad>": 1} | {w: i + 2 for i, w in enumerate(dict.fromkeys(WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")


def tiny_model(seed: int = 0, vocab_size: int = 64):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=48,
        tie_word_embeddings=True,
        initializer_range=0.2,
    )
    return LlamaForCausalLM(cfg)


def write_docs(folder, seed: int = 0, docs: int = 3):
    """Documents of 30 paragraphs of 12 words in the tiny model's vocabulary (prototok.sources cuts samples
    at blank lines); returns the folder."""
    rng = random.Random(seed)
    for d in range(docs):
        paras = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(30)]
        (folder / f"d{d}.txt").write_text("\n\n".join(paras))
    return folder


@pytest.fixture(scope="package")
def tiny_dir(tmp_path_factory):
    """The tiny model saved as an HF folder, so the CLI can load it with --model PATH.

    Random weights; the wide init (0.2) makes it expressive enough to fit short texts quickly."""
    path = tmp_path_factory.mktemp("tiny")
    tiny_model().save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="package")
def tiny(tiny_dir):
    from prototok.models import load_model

    return load_model(str(tiny_dir), "cpu")


@pytest.fixture(scope="package")
def real():
    """The default model; skipped only when its package is absent (CI installs it)."""
    from prototok.errors import PrototokError
    from prototok.models import load_model

    try:
        return load_model("smollm2-135m", "cpu")
    except PrototokError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))
