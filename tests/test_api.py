"""The Python API as rich as the command line: the recipe overrides, progress, a short repr, save/from_pretrained."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import prototok
from prototok.cli import main

TEXT = "the cat sat on the mat"


def test_steps_lr_and_init_scale_override_the_recipe_with_the_clis_key(tiny, tiny_dir, tmp_path):
    proto = prototok.encode(TEXT, tiny, recipe="paper", steps=300, lr=0.1, init_scale=0.5)
    args = ["encode", TEXT, "--model", tiny_dir, "--device", "cpu", "--recipe", "paper", "--steps", "300",
            "--lr", "0.1", "--init-scale", "0.5", "-o", tmp_path / "p.safetensors"]  # fmt: skip
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    assert proto.recipe == prototok.ProtoTokens.load(tmp_path / "p.safetensors").recipe
    assert "lr=0.1" in proto.recipe and "max_steps=300" in proto.recipe and "init_scale=0.5" in proto.recipe
    assert proto.accuracy == [1.0]
    # a Recipe object takes the same overrides; steps=0 is a budget of its own, not "unset"
    rec = prototok.RECIPES["paper"]
    assert prototok.encode(TEXT, tiny, recipe=rec, steps=0, lr=0.1).recipe == "paper(lr=0.1,max_steps=0)"


def test_progress_true_shows_the_clis_lines_false_nothing_and_a_callable_is_called(tiny, capsys):
    kw = {"recipe": "paper:lr=0.1,max_steps=300"}
    prototok.encode(TEXT, tiny, progress=True, **kw)
    err = capsys.readouterr().err
    assert "prototok: encode: 1/1 texts" in err and "\r" not in err  # not a terminal: plain lines
    prototok.encode(TEXT, tiny, progress=False, **kw)
    assert capsys.readouterr().err == ""
    seen = []
    prototok.encode(TEXT, tiny, progress=seen.append, **kw)
    assert seen and seen[-1].done == 1 and capsys.readouterr().err == ""


def test_repr_is_short_and_says_what_the_file_holds(tiny):
    proto = prototok.encode(["the cat sat", "a dog ran"], tiny, recipe="paper:lr=0.1,max_steps=300")
    text = repr(proto)
    assert text.startswith("ProtoTokens(") and "\n" not in text and len(text) < 300
    for part in (repr(tiny.name), repr(proto.layout), "texts=2",
                 f"lengths={proto.lengths}", repr(proto.recipe), "accuracy=[1.0, 1.0]"):  # fmt: skip
        assert part in text, (part, text)
    assert "tensor" not in text
    proto.lengths = list(range(1, 101))  # many texts: the lists are cut short
    assert len(repr(proto)) < 400


def test_save_pretrained_and_from_pretrained_a_folder_a_file_or_a_repo(tiny, tmp_path, monkeypatch):
    import huggingface_hub

    proto = prototok.encode(TEXT, tiny, recipe="paper:lr=0.1,max_steps=300")
    path = proto.save_pretrained(tmp_path / "protos")
    assert path == tmp_path / "protos" / "prototokens.safetensors" and path.is_file()
    for where in (tmp_path / "protos", str(tmp_path / "protos"), path):
        back = prototok.ProtoTokens.from_pretrained(where)
        assert torch.equal(back.e, proto.e.float().cpu()) and back.recipe == proto.recipe
    assert prototok.decode(back, tiny)[0].text == TEXT
    proto.save(tmp_path / "one.safetensors")  # save/load stay as they were
    assert prototok.ProtoTokens.load(tmp_path / "one.safetensors").lengths == proto.lengths
    with pytest.raises(prototok.PrototokError, match="prototokens.safetensors"):
        prototok.ProtoTokens.from_pretrained(tmp_path)  # a folder without the file: one line naming it
    (tmp_path / "taken").write_text("a file")
    with pytest.raises((prototok.PrototokError, OSError)):
        proto.save_pretrained(tmp_path / "taken")

    def hf_hub_download(repo_id, filename, **kw):  # a Hub repo id: fetched as before
        assert (repo_id, filename) == ("me/protos", "prototokens.safetensors")
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    from prototok import hub

    monkeypatch.setattr(hub, "is_offline", lambda: False)
    assert prototok.ProtoTokens.from_pretrained("me/protos").recipe == proto.recipe
