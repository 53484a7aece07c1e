import json

import pytest
import torch

from prototok import ProtoTokens, decode, encode
from prototok.errors import PrototokError
from prototok.models import prepare
from prototok.recipes import get_recipe

from .conftest import tiny_model, tiny_tokenizer

FAST = get_recipe("paper", lr=0.1, max_steps=300)


@pytest.fixture(scope="module")
def proto(tiny):
    return encode(["the cat sat on the mat", "bird sang"], tiny, recipe=FAST)


def test_round_trip_keeps_tensors_and_metadata(proto, tmp_path):
    path = proto.save(tmp_path / "p.safetensors")
    back = ProtoTokens.load(path)
    assert torch.equal(back.e, proto.e) and torch.equal(back.m, proto.m)
    assert back.lengths == proto.lengths == [6, 2]
    assert back.layout == "e m^(N-1)" and back.recipe == "paper(lr=0.1,max_steps=300)"  # the resolved recipe
    assert back.accuracy == proto.accuracy and back.steps == proto.steps
    assert back.model_fingerprint == proto.model_fingerprint and back.texts is None
    assert len(back.text_sha256[0]) == 64
    assert [d.text for d in decode(back, proto_model(back))] == ["the cat sat on the mat", "bird sang"]


def proto_model(p):
    from prototok.models import load_model

    return load_model(p.model, "cpu")


def test_store_text_keeps_the_text(tiny, tmp_path):
    p = encode("bird sang", tiny, recipe=FAST, store_text=True)
    assert ProtoTokens.load(p.save(tmp_path / "t.safetensors")).texts == ["bird sang"]


def test_shared_m_file_holds_one_m(tiny, tmp_path):
    p = encode(["the cat sat", "bird sang"], tiny, recipe=FAST, share="m")
    back = ProtoTokens.load(p.save(tmp_path / "s.safetensors"))
    assert back.m.shape == (1, tiny.hidden_size) and back.e.shape == (2, tiny.hidden_size)
    assert [d.text for d in decode(back, tiny)] == ["the cat sat", "bird sang"]


def test_decode_reports_accuracy_against_a_reference(proto, tiny):
    out = decode(proto, tiny, references=["the cat sat on the mat", "bird slept"])
    assert out[0].accuracy == 1.0 and out[1].accuracy == 0.5


def test_another_model_is_refused_naming_both(proto):
    other = prepare("other-tiny", tiny_model(seed=1), tiny_tokenizer(), "cpu")
    with pytest.raises(PrototokError, match="other-tiny") as err:
        decode(proto, other)
    assert proto.model in str(err.value)


def test_another_tokenizer_is_refused(proto, tiny):
    from transformers import PreTrainedTokenizerFast

    tok = tiny_tokenizer()
    tok.add_tokens(["zebra"])
    assert isinstance(tok, PreTrainedTokenizerFast)
    other = prepare("tiny-other-tok", tiny.model, tok, "cpu")
    with pytest.raises(PrototokError, match="tokenizer"):
        decode(proto, other)


def test_garbage_file_is_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00not a safetensors file at all")
    with pytest.raises(PrototokError, match="not a readable"):
        ProtoTokens.load(bad)


def test_tampered_tensor_is_refused(proto, tmp_path):
    path = proto.save(tmp_path / "p.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(PrototokError, match="modified"):
        ProtoTokens.load(path)


def test_foreign_safetensors_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"weight": torch.zeros(2)}, path)
    with pytest.raises(PrototokError, match="not a prototok"):
        ProtoTokens.load(path)


def test_newer_format_is_refused(proto, tmp_path):
    from safetensors.torch import load_file, save_file

    path = proto.save(tmp_path / "p.safetensors")
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = json.loads(f.metadata()["prototok"])
    meta["format_version"] = 99
    save_file(load_file(path), path, metadata={"prototok": json.dumps(meta)})
    with pytest.raises(PrototokError, match="format version 99"):
        ProtoTokens.load(path)


def test_save_leaves_no_temp_file_and_overwrites_atomically(proto, tmp_path):
    path = tmp_path / "p.safetensors"
    proto.save(path)
    proto.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["p.safetensors"]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PrototokError, match="no such file"):
        ProtoTokens.load(tmp_path / "nope.safetensors")


def _with_unknown_key(proto, path):
    """A file a newer prototok might write: one metadata key this one does not know (checksums matching)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from prototok.protofile import CHECKSUM_KEY, _file_digest  # the test forges a file

    proto.save(path)
    with safe_open(path, "pt") as f:
        meta = json.loads(f.metadata()["prototok"])
    meta["from_the_future"] = 1
    raw = json.dumps(meta, sort_keys=True)
    save_file(load_file(path), path, metadata={"prototok": raw, CHECKSUM_KEY: _file_digest(raw, meta["tensor_sha256"])})
    return path


def test_unknown_metadata_keys_are_a_warning_of_the_prototok_logger(proto, tmp_path, caplog, recwarn):
    path = _with_unknown_key(proto, tmp_path / "p.safetensors")
    with caplog.at_level("WARNING", logger="prototok"):
        back = ProtoTokens.load(path)
    assert back.lengths == proto.lengths
    (record,) = [r for r in caplog.records if r.name == "prototok"]
    assert record.levelname == "WARNING" and "ignoring unknown metadata keys ['from_the_future']" in record.message
    assert not [w for w in recwarn if "metadata" in str(w.message)]  # a log record, not a Python warning
