"""Recipe specs: one parser (recipes.parse_recipe) behind --recipe, the benches and stored keys."""

import pytest
from click.testing import CliRunner

from prototok.cli import main
from prototok.protofile import ProtoTokens
from prototok.recipes import RECIPES, parse_recipe


def test_a_spec_sets_typed_fields_and_the_key_says_what_differs():
    r = parse_recipe("fast-e50:e_scale=30,schedule=cosine,betas=0.9/0.99,optimizer=lbfgs", max_steps=300)
    assert r.name == "fast-e50" and r.e_scale == 30.0 and r.schedule == "cosine" and r.betas == (0.9, 0.99)
    assert r.key == "fast-e50(e_scale=30.0,betas=(0.9, 0.99),max_steps=300,schedule=cosine,optimizer=lbfgs)"
    assert parse_recipe("paper") == RECIPES["paper"] and parse_recipe("paper").key == "paper"
    assert parse_recipe("paper", lr=None).key == "paper"  # None keeps the recipe's value


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nope", "unknown recipe 'nope'"),
        ("fast:zz=1", "FIELD one of: lr"),
        ("fast:lr", "is not FIELD=VALUE"),
        ("fast:lr=abc", "cannot read 'abc' as float"),
        ("fast:optimizer=sgd", "Recipe.optimizer must be one of"),
        ("fast:lr=-1", "Recipe.lr must be > 0"),
    ],
)
def test_a_bad_spec_is_a_value_error_naming_the_problem(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_recipe(spec)


def test_the_resolved_recipe_reaches_the_file(tiny_dir, tmp_path):
    out = tmp_path / "p.safetensors"
    spec = "paper:lr=0.1,restart_after=50"
    r = CliRunner().invoke(main, ["encode", "bird sang", "--model", tiny_dir, "--recipe", spec, "--steps", "300",
                                  "-o", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert ProtoTokens.load(out).recipe == "paper(lr=0.1,max_steps=300,restart_after=50)"
    bad = CliRunner().invoke(main, ["encode", "bird sang", "--model", tiny_dir, "--recipe", "paper:lr=x",
                                    "-o", str(tmp_path / "q.safetensors")])  # fmt: skip
    assert bad.exit_code == 2 and "cannot read 'x'" in bad.output and not (tmp_path / "q.safetensors").exists()


def test_the_default_is_fast_lbfgs_keep_per_text_and_fast_e50_where_texts_share_a_vector(tiny, tiny_dir, tmp_path):
    from prototok.encode import encode

    one = encode("bird sang", tiny)
    shared = encode(["bird sang", "the cat sat"], tiny, share="m")
    assert one.recipe == "fast-lbfgs-keep" and shared.recipe == "fast-e50"
    # a per-text optimiser named for a shared fit: exit 2, one line, before the model loads, no file
    out = tmp_path / "p.safetensors"
    r = CliRunner().invoke(main, ["encode", "a b", "--share", "m", "--recipe", "fast-lbfgs", "--model",
                                  str(tmp_path / "no-such-model"), "-o", str(out)])  # fmt: skip
    assert r.exit_code == 2 and "per-text vectors only" in r.output and "--recipe fast-e50" in r.output
    assert not out.exists()
