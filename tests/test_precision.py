"""The precision rule: L-BFGS fits run in plain fp32 on any device, low precision is a warning, and the precision a
fit ran at is stored in its file, shown by `info` and used again to decode it."""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from prototok import ProtoTokens, decode, encode
from prototok.cli import main
from prototok.errors import PrototokError
from prototok.fit import fit
from prototok.methods import OnePass
from prototok.models import wrap_model
from prototok.precision import Precision, decode_dtype, exact_matmuls, fit_precision, for_decode, load_dtype
from prototok.recipes import DEFAULT_RECIPE, get_recipe

from .conftest import tiny_model, tiny_tokenizer

encode_module = importlib.import_module("prototok.encode")  # the module: prototok.encode is the function
LBFGS = get_recipe(DEFAULT_RECIPE, max_steps=60)  # AdamW then L-BFGS
ADAMW = get_recipe("fast-e50", max_steps=60)
TEXT = [[3, 4, 5, 6]]


def cuda_like(lm):
    """What load_model gives on CUDA for fp32 weights with dtype auto: the same weights under bf16 autocast (the
    autocast itself runs on CPU here: CI has no GPU)."""
    return replace(lm, autocast_dtype=torch.bfloat16)


def test_load_dtype_is_float32_for_lbfgs_when_auto():
    assert load_dtype(LBFGS, None) == "float32" and load_dtype(LBFGS, "auto") == "float32"
    assert load_dtype(LBFGS, "bfloat16") == "bfloat16"  # asked for explicitly: stays (with a warning at fit time)
    assert load_dtype(ADAMW, None) is None and load_dtype(ADAMW, "auto") == "auto"
    assert OnePass(LBFGS).load_dtype(None) == "float32"  # what run_experiment loads with


def test_encode_loads_fp32_weights_for_the_default_recipe(tiny, monkeypatch):
    """prototok.encode("...", "name") on a GPU would load the checkpoint's bf16 weights by default; the rule
    asks load_model for float32 when the recipe runs L-BFGS."""
    asked = []

    def fake_as_loaded(model, device=None, default=None, dtype=None):
        asked.append(dtype)
        return tiny

    monkeypatch.setattr(encode_module, "as_loaded", fake_as_loaded)
    encode("the cat", "some-model", recipe=get_recipe(DEFAULT_RECIPE, max_steps=5))
    encode("the cat", "some-model", recipe=get_recipe("fast-e50", max_steps=5))
    assert asked == ["float32", None]


def test_lbfgs_drops_autocast_on_a_cuda_like_model(tiny):
    view, prec = fit_precision(cuda_like(tiny), LBFGS)
    assert view.autocast_dtype is None and prec == Precision(torch.float32) and prec.exact
    assert view.model is tiny.model and view.fingerprint == tiny.fingerprint  # same weights, no copy
    view, prec = fit_precision(cuda_like(tiny), ADAMW)  # AdamW keeps the model's own (measured safe)
    assert view.autocast_dtype == torch.bfloat16 and prec.name == "float32+bfloat16-autocast"


def test_each_result_records_the_precision_it_ran_at(tiny):
    assert fit(cuda_like(tiny), TEXT, recipe=LBFGS)[0].precision == "float32"
    assert fit(cuda_like(tiny), TEXT, recipe=LBFGS, precision="model")[0].precision == "float32+bfloat16-autocast"
    assert fit(cuda_like(tiny), TEXT, recipe=ADAMW)[0].precision == "float32+bfloat16-autocast"
    with pytest.raises(ValueError, match="precision must be one of"):
        fit(tiny, TEXT, recipe=LBFGS, precision="fp8")


def test_lbfgs_on_bf16_weights_warns_once_and_runs_as_asked(caplog):
    bf16 = wrap_model(tiny_model(), tiny_tokenizer(), name="tiny-bf16", dtype="bfloat16")
    with caplog.at_level(logging.WARNING, logger="prototok"):
        res = fit(bf16, TEXT, recipe=LBFGS)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "bfloat16" in warned[0] and "float32" in warned[0] and "L-BFGS" in warned[0]
    assert res[0].precision == "bfloat16"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="prototok"):
        fit(bf16, TEXT, recipe=ADAMW)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_exact_matmuls_sets_highest_and_restores():
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        with exact_matmuls(Precision(torch.float32)):
            assert torch.get_float32_matmul_precision() == "highest"
        assert torch.get_float32_matmul_precision() == "high"
        with exact_matmuls(Precision(torch.float32, torch.bfloat16)):  # not exact: left alone
            assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


def test_the_file_stores_the_precision_and_info_shows_it(tiny, tiny_dir, tmp_path):
    proto = encode("the cat sat", tiny, recipe=get_recipe(DEFAULT_RECIPE, max_steps=40))
    assert proto.precision == "float32"
    path = proto.save(tmp_path / "p.safetensors")
    assert ProtoTokens.load(path).precision == "float32"
    r = CliRunner().invoke(main, ["info", str(path), "--json"])
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert shown["precision"] == "float32" and shown["layout"] == "e m^(N-1)" and shown["texts"][0]["n_tokens"] == 3
    r = CliRunner().invoke(main, ["info", str(path)])
    assert r.exit_code == 0 and "precision: float32" in r.output


def test_decode_runs_in_the_fits_precision(tiny):
    fitted = fit(cuda_like(tiny), TEXT, recipe=ADAMW)  # fitted under bf16 autocast
    assert for_decode(tiny, fitted[0].precision).autocast_dtype == torch.bfloat16  # decoded under it again
    assert for_decode(cuda_like(tiny), "float32").autocast_dtype is None  # a plain-fp32 fit decodes in plain fp32
    assert for_decode(cuda_like(tiny), "").autocast_dtype == torch.bfloat16  # an old file: as the model computes
    assert decode_dtype("float32", None) == "float32" and decode_dtype("bfloat16", "auto") == "bfloat16"
    assert decode_dtype("float32", "bfloat16") == "bfloat16" and decode_dtype("", None) is None


def test_a_dtype_mismatch_names_both_dtypes(tiny):
    proto = encode("the cat", tiny, recipe=get_recipe(DEFAULT_RECIPE, max_steps=30))
    bf16 = wrap_model(tiny.model, tiny.tokenizer, name=tiny.name, dtype="bfloat16")
    with pytest.raises(PrototokError, match="float32 weights.*are bfloat16.*--dtype float32"):
        decode(proto, bf16)
