import pytest
import torch

from prototok.baselines.cramming import (
    CramConfig,
    Cramming,
    cram,
    generation_scores,
    greedy_generate,
    mem_of,
    teacher_forced_inputs,
    teacher_forced_scores,
)
from prototok.decode import decode_tokens
from prototok.errors import PrototokError
from prototok.methods import to_proto
from prototok.onepass import hidden_states
from prototok.protofile import ProtoTokens

# The tiny model is random: a higher lr than the paper's 1e-2 keeps these runs to a few dozen steps.
FAST = CramConfig(num_mem=2, lr=0.1, max_steps=300)
TEXT = "river flowed past old mill"


def ids(lm, text):
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


def random_mem(lm, b, k, seed=0):
    std = lm.model.get_input_embeddings().weight.std()
    return torch.randn(b, k, lm.hidden_size, generator=torch.Generator().manual_seed(seed)) * std


@pytest.fixture(scope="module")
def crammed(tiny):
    return cram(tiny, [ids(tiny, TEXT)], FAST)[0]


def test_baseline_reconstructs_a_short_text_by_greedy_decoding(tiny, crammed):
    toks = ids(tiny, TEXT)
    assert crammed.solved and crammed.accuracy == 1.0 and crammed.steps < FAST.max_steps
    assert crammed.generated == toks and crammed.gen_accuracy == 1.0 and crammed.gen_prefix == len(toks)
    # the kept vectors score what the result says, recomputed from scratch
    loss, correct = teacher_forced_scores(tiny, crammed.mem[None], [toks])
    assert correct.item() == len(toks) and loss.item() == pytest.approx(crammed.loss, rel=1e-4)


def test_one_mem_vector_also_crams_it(tiny):
    (r,) = cram(tiny, [ids(tiny, "past old mill")], CramConfig(num_mem=1, lr=0.1, max_steps=300))
    assert r.mem.shape == (1, tiny.hidden_size)
    assert r.solved and r.gen_accuracy == 1.0


def test_cached_greedy_generation_agrees_with_the_teacher_forced_forward(tiny):
    """Fed its own greedy output, the uncached forward must predict exactly that output: no off-by-one
    between mem and text positions, and the KV cache computes what the full forward does."""
    mem = random_mem(tiny, 3, 2)
    gen = greedy_generate(tiny, mem, 6)  # (3, 6)
    x, targets = teacher_forced_inputs(tiny, mem, gen.tolist())
    with torch.no_grad():
        h = hidden_states(tiny, x)
        pred = tiny.model.get_output_embeddings()(h).argmax(-1)  # (3, K + 5)
    assert torch.equal(pred[:, 1:], gen)  # the last mem position (K - 1 = 1) predicts token 0


def test_padding_does_not_change_any_texts_scores(tiny):
    lists = [ids(tiny, "the cat sat on the mat"), ids(tiny, "bird sang")]
    mem = random_mem(tiny, 2, 2, seed=1)
    batch_loss, batch_ok = teacher_forced_scores(tiny, mem, lists)
    for i in range(2):
        loss, ok = teacher_forced_scores(tiny, mem[i : i + 1], [lists[i]])
        assert torch.allclose(batch_loss[i], loss[0], atol=1e-5) and batch_ok[i] == ok[0]


def test_a_texts_trajectory_does_not_depend_on_its_batch(tiny):
    lists = [ids(tiny, "the cat sat on the mat"), ids(tiny, "bird sang"), ids(tiny, "a dog ran to the park")]
    cfg = CramConfig(num_mem=2, lr=0.1, max_steps=6)
    batched, alone = cram(tiny, lists, cfg, batch_size=3), cram(tiny, lists, cfg, batch_size=1)
    assert [r.index for r in batched] == [0, 1, 2]
    for x, y in zip(batched, alone):
        assert x.steps == y.steps and x.accuracy == y.accuracy
        assert torch.allclose(x.mem, y.mem, atol=1e-4)


def test_generation_scores_count_positions_and_prefix():
    assert generation_scores([1, 2, 9, 4], [1, 2, 3, 4]) == (0.75, 2)
    assert generation_scores([1, 2], [1, 2]) == (1.0, 2)


def test_saved_in_the_proto_token_format_and_decoded_greedily(tiny, crammed, tmp_path):
    method = Cramming(FAST)
    proto = to_proto(method, tiny, [crammed], layout="mem", texts=[TEXT], store_text=True)
    path = proto.save(tmp_path / "mem.safetensors")
    back = ProtoTokens.load(path)
    assert back.layout == "mem" and back.extra["num_mem"] == 2 and back.recipe == method.key
    assert back.recipe == "cram(num_mem=2,lr=0.1,max_steps=300)" and back.texts == [TEXT]
    assert torch.equal(mem_of(back), crammed.mem[None])
    assert decode_tokens(tiny, back) == [ids(tiny, TEXT)]  # dispatched on the file's layout to greedy decoding


def test_a_one_pass_file_is_not_taken_for_mem_vectors(tiny, crammed):
    proto = to_proto(Cramming(FAST), tiny, [crammed], layout="mem", texts=[TEXT])
    proto.layout = "e m^(N-1)"
    with pytest.raises(PrototokError, match="not cramming"):
        mem_of(proto)
    proto.layout, proto.extra["num_mem"] = "mem", 3
    with pytest.raises(PrototokError, match="num_mem = 3"):
        mem_of(proto)


def test_config_validates_its_fields_and_long_texts_are_refused(tiny):
    with pytest.raises(ValueError, match="num_mem"):
        CramConfig(num_mem=0)
    with pytest.raises(ValueError, match="lr"):
        CramConfig(lr=0)
    with pytest.raises(PrototokError, match="context"):
        cram(tiny, [[2] * 48], CramConfig(num_mem=2, max_steps=1))
