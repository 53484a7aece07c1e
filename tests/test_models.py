import pytest
import torch

from prototok.errors import PrototokError
from prototok.models import _convert_gguf, cache_dir, resolve


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PROTOTOK_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PROTOTOK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "prototok"


@pytest.mark.parametrize("name", ["no-such-model", "a/b/c", "./missing-folder/"])
def test_unknown_model_names_the_choices(name):
    with pytest.raises(PrototokError, match="unknown model") as err:
        resolve(name)
    assert "smollm2-135m" in str(err.value)


def test_hub_ids_pass_through_for_online_users():
    assert resolve("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"


def test_folder_without_config_and_missing_gguf_are_refused(tmp_path):
    with pytest.raises(PrototokError, match="config.json"):
        resolve(str(tmp_path))
    with pytest.raises(PrototokError, match="no GGUF file"):
        resolve(str(tmp_path / "x.gguf"))


def test_a_conversion_killed_half_way_leaves_no_cache(monkeypatch, tmp_path):
    """The conversion writes a temp folder and renames it: a failure mid-way leaves neither."""
    import transformers

    def boom(*a, **k):
        raise KeyboardInterrupt  # as if Ctrl-C arrived while dequantising

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", boom)
    target = tmp_path / "models" / "m"
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(KeyboardInterrupt):
        _convert_gguf(gguf, target)
    assert not target.exists() and list((tmp_path / "models").iterdir()) == []


def test_loaded_model_is_frozen_and_in_eval_mode(tiny):
    assert not tiny.model.training
    assert not any(p.requires_grad for p in tiny.model.parameters())
    assert tiny.device == torch.device("cpu") and tiny.autocast_dtype is None


def test_fingerprints_tell_models_apart(tiny):
    from prototok.models import prepare

    from .conftest import tiny_model, tiny_tokenizer

    same = prepare("again", tiny_model(seed=0), tiny_tokenizer(), "cpu")
    other = prepare("other", tiny_model(seed=1), tiny_tokenizer(), "cpu")
    assert same.fingerprint == tiny.fingerprint and other.fingerprint != tiny.fingerprint
    assert same.tokenizer_fingerprint == tiny.tokenizer_fingerprint
