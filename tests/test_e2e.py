"""End to end on the real default model (SmolLM2-135M): short natural sentences come back exactly."""

import json

import pytest
from click.testing import CliRunner

from prototok import ProtoTokens, decode, encode
from prototok.cli import main
from prototok.recipes import DEFAULT_RECIPE, get_recipe

pytestmark = pytest.mark.slow
CAP = get_recipe(DEFAULT_RECIPE, max_steps=400)  # the default recipe, capped so a regression fails instead of hanging


def test_api_round_trip_is_exact(real, tmp_path):
    text = "The cat sat on the mat and looked out of the window."
    proto = encode(text, real, recipe=CAP)
    assert 8 <= proto.lengths[0] <= 16
    assert proto.accuracy == [1.0]
    back = ProtoTokens.load(proto.save(tmp_path / "p.safetensors"))
    (out,) = decode(back, real, references=[text])
    assert out.text == text and out.accuracy == 1.0


def test_cli_round_trip_is_exact(real, tmp_path):
    text = "Paris is the capital and largest city of France."
    out = tmp_path / "paris.safetensors"
    r = CliRunner().invoke(main, ["encode", text, "--steps", "400", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["texts"][0]["accuracy"] == 1.0
    d = CliRunner().invoke(main, ["decode", str(out)])
    assert d.exit_code == 0 and d.stdout.strip() == text
    assert "decoded with model 'smollm2-135m'" in d.stderr  # without --model, decode says which model it loaded


def test_paper_recipe_is_exactly_as_published():
    p = get_recipe("paper")
    assert (p.lr, p.betas, p.weight_decay, p.init, p.init_scale, p.max_steps) == (
        1e-2,
        (0.9, 0.9),
        0.01,
        "normal",
        1.0,
        5000,
    )
    assert p.e_scale == 1.0 and p.schedule == "constant" and p.restart_after == 0
