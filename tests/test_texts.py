"""experiments.texts.exact_length_texts: the texts benchmarks and studies compare settings on."""

import pytest

from prototok.errors import PrototokError
from prototok.experiments.texts import exact_length_texts, load
from prototok.tokens import tokenize

from .conftest import write_docs


def test_exact_length_texts_cut_samples_then_extra_texts_to_exactly_n_tokens(tiny, tmp_path):
    docs = str(write_docs(tmp_path, seed=1))
    out = exact_length_texts(tiny, 6, 2, docs, data_seed=4, min_chars=300)
    _, samples = load(docs, 6, tiny, data_seed=4, min_chars=300)
    assert out == [tokenize(tiny.tokenizer, s.text)[:6] for s in samples[:2]]
    extra = ["the cat sat on the mat", "a dog ran", "the bird sang a song in the morning"]
    assert exact_length_texts(tiny, 6, 2, extra=extra) == [tokenize(tiny.tokenizer, extra[i])[:6] for i in (0, 2)]
    with pytest.raises(PrototokError, match="only 2 texts of >= 6 tokens"):
        exact_length_texts(tiny, 6, 3, extra=extra)
