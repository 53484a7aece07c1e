import pytest
import torch

from prototok.baselines.cramming import (
    HC_LAYOUT,
    MEM_LAYOUT,
    CramConfig,
    Cramming,
    SinkCramming,
    Targets,
    cram,
    generation_scores,
    hc_targets,
    mem_of,
    teacher_forced_inputs,
    teacher_forced_scores,
)
from prototok.decode import decode_tokens
from prototok.errors import PrototokError
from prototok.fit import init_stream
from prototok.generation import greedy_generate
from prototok.layouts import IGNORE
from prototok.methods import METHODS, for_layout, judged_score, to_proto
from prototok.onepass import hidden_states
from prototok.protofile import ProtoTokens
from prototok.tokens import added_bos

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
    method = SinkCramming(FAST)  # the sink variant is "cram-sink"; its files and keys are unchanged
    proto = to_proto(method, tiny, [crammed], layout="mem", texts=[TEXT], store_text=True)
    path = proto.save(tmp_path / "mem.safetensors")
    back = ProtoTokens.load(path)
    assert back.layout == "mem" and back.extra["num_mem"] == 2 and back.recipe == method.key
    assert back.recipe == "cram(num_mem=2,lr=0.1,max_steps=300)" and back.texts == [TEXT]
    assert torch.equal(mem_of(back), crammed.mem[None])
    assert decode_tokens(tiny, back) == [ids(tiny, TEXT)]  # dispatched on the file's layout to greedy decoding


def test_a_one_pass_file_is_not_taken_for_mem_vectors(tiny, crammed):
    proto = to_proto(SinkCramming(FAST), tiny, [crammed], layout="mem", texts=[TEXT])
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


# ------------------------------------------------------------------ the baseline as hidden_capacity runs it


def with_bos(lm):
    """The tiny model with a tokenizer that adds a BOS ("<pad>", id 1) in front of every text by default, as
    Llama-3's does (the tiny tokenizer names none and adds none, as Pythia's adds none)."""
    import copy
    from dataclasses import replace

    from tokenizers import processors

    tok = copy.deepcopy(lm.tokenizer)
    tok.bos_token = "<pad>"
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<pad> $A", special_tokens=[("<pad>", 1)]
    )
    return replace(lm, tokenizer=tok)


def hc_restated(lm, text, mem0, *, lr, steps, patience=2000, wd=0.01, betas=(0.9, 0.9)):
    """hidden_capacity's loop, restated from its model.py (MemoryCell) and train.py (run_single_experiment):
    input_ids = tokenizer(text) (the tokenizer's defaults: BOS if it adds one); inputs_embeds = [memory,
    embed(input_ids)]; the logits at the memory positions dropped; loss = CE(logits[:, :-1], input_ids[:, 1:]);
    accuracy = mean(argmax(logits[:, :-1]) == input_ids[:, 1:]); AdamW; best = strictly higher accuracy; stop at
    best accuracy 1.0 or after `patience` steps without a better one; at most `steps` iterations.
    Returns (accuracies, losses, best accuracy, best loss, the memory before each step)."""
    ids = torch.tensor([lm.tokenizer(text)["input_ids"]])
    memory = torch.nn.Parameter(mem0.clone()[None])  # (1, K, d)
    opt = torch.optim.AdamW([memory], lr=lr, weight_decay=wd, betas=betas)
    k = mem0.shape[0]
    accs, losses, mems, best_acc, best_loss, counter = [], [], [], 0.0, float("inf"), 0
    for _ in range(steps):
        x = torch.cat([memory, lm.model.get_input_embeddings()(ids)], dim=1)
        logits = lm.model(inputs_embeds=x).logits[:, k:]
        shift, labels = logits[:, :-1], ids[:, 1:]
        loss = torch.nn.functional.cross_entropy(shift.reshape(-1, shift.shape[-1]).float(), labels.reshape(-1))
        acc = (shift.argmax(-1) == labels).float().mean().item()
        mems.append(memory.detach()[0].clone())  # what scored `acc` (train.py keeps the memory after opt.step)
        loss.backward()
        opt.step()
        opt.zero_grad()
        accs.append(acc)
        losses.append(loss.item())
        if best_acc < acc:
            best_acc, best_loss, counter = acc, loss.item(), 0
        else:
            counter += 1
        if best_acc == 1.0 or counter >= patience:
            break
    return accs, losses, best_acc, best_loss, mems


def test_hc_inputs_supervise_the_text_positions_only(tiny):
    """[mem_1, mem_2, BOS, t_1..t_N]: the mem positions' logits unsupervised, t_1 predicted from BOS; without a
    BOS, [mem_1, mem_2, t_1..t_N] with t_1 given and t_2..t_N supervised from t_1..t_{N-1}."""
    toks = ids(tiny, "the cat sat on")  # 4 tokens
    mem = random_mem(tiny, 1, 2)
    assert added_bos(tiny) is None and added_bos(with_bos(tiny)) == 1
    _, targets = teacher_forced_inputs(tiny, mem, [hc_targets(toks, None)])
    assert targets[0].tolist() == [IGNORE, IGNORE, *toks[1:]]  # positions: mem, mem, t_1..t_3 (t_4 not an input)
    _, targets = teacher_forced_inputs(tiny, mem, [hc_targets(toks, 1)])
    assert targets[0].tolist() == [IGNORE, IGNORE, *toks]  # mem, mem, BOS, t_1..t_3
    x, _ = teacher_forced_inputs(tiny, mem, [hc_targets(toks, 1)])
    emb = tiny.model.get_input_embeddings()
    assert torch.equal(x[0, 2], emb.weight[1]) and torch.equal(x[0, 3:], emb(torch.tensor(toks[:-1])))
    # the sink variant: the last mem position predicts t_1
    _, targets = teacher_forced_inputs(tiny, mem, [toks])
    assert targets[0].tolist() == [IGNORE, *toks]
    with pytest.raises(PrototokError, match="at least 2 tokens"):
        hc_targets(toks[:1], None)
    assert isinstance(hc_targets(toks, None), Targets) and hc_targets(toks, None).lead == toks[:1]


@pytest.mark.parametrize("bos", [False, True], ids=["no-bos", "bos"])
def test_same_text_model_and_seed_give_hidden_capacitys_trajectory(tiny, bos):
    """Side by side with a restatement of hidden_capacity's loss and loop: from the same initial memory, the
    same accuracy at every step, the same number of steps (stop rule), the same best accuracy. The kept memory
    is the one that scored it (train.py stores the memory after the following opt.step); among steps tied at
    the best accuracy prototok keeps the lowest loss, train.py the first (README, "Fidelity")."""
    lm = with_bos(tiny) if bos else tiny
    text = "the cat sat on the mat and then slept"
    cfg = CramConfig(num_mem=2, lr=0.05, max_steps=25, patience=6)
    trajectory = []
    (r,) = cram(lm, [ids(lm, text)], cfg, seed=3, batch_size=1, hc=True, init_ids=[7],
                progress=lambda p: trajectory.append(p.active_accuracy))  # fmt: skip
    scale = lm.model.get_input_embeddings().weight.float().std().item()
    mem0 = (torch.randn(2 * lm.hidden_size, generator=init_stream(3, 7)) * scale).view(2, lm.hidden_size)
    accs, losses, best_acc, best_loss, mems = hc_restated(lm, text, mem0, lr=0.05, steps=25, patience=6)
    assert len(trajectory) == len(accs)  # the same number of forward passes: the same stop
    assert trajectory == pytest.approx(accs, abs=1e-6)
    assert r.accuracy == pytest.approx(best_acc) and 0 < best_acc < 1  # neither solved nor hopeless
    tied = [i for i, a in enumerate(accs) if a == best_acc]
    assert best_loss == pytest.approx(losses[tied[0]])  # train.py's best_loss: the first step at best accuracy
    low = min(tied, key=lambda i: losses[i])
    assert r.loss == pytest.approx(losses[low], rel=1e-4) and r.steps == low
    assert torch.allclose(r.mem, mems[low], atol=1e-4)
    n = len(ids(lm, text))
    assert round(r.accuracy * (n if bos else n - 1)) == round(best_acc * (n if bos else n - 1))


def test_hc_file_keys_layout_and_greedy_decoding(tiny, tmp_path):
    """The baseline's rows and files never mix with the sink variant's: key "hc-cram(...)", layout "hc-mem";
    judged teacher-forced, greedy accuracy beside it; decoding starts after BOS, or after the given t_1."""
    toks = ids(tiny, TEXT)
    method = Cramming(FAST)
    assert method.key == "hc-cram(num_mem=2,lr=0.1,max_steps=300)" and SinkCramming(FAST).key.startswith("cram(")
    assert METHODS["cram"] is Cramming and METHODS["cram-sink"] is SinkCramming
    assert for_layout(HC_LAYOUT) is Cramming and for_layout(MEM_LAYOUT) is SinkCramming
    for lm in (tiny, with_bos(tiny)):
        (r,) = method.fit(lm, [toks], seed=0)
        assert r.solved and r.tokens == toks and r.generated == toks and r.gen_accuracy == 1.0
        proto = to_proto(method, lm, [r], layout=HC_LAYOUT, texts=[TEXT])
        back = ProtoTokens.load(proto.save(tmp_path / "hc.safetensors"))
        assert back.layout == HC_LAYOUT and back.recipe == method.key and back.extra["first_tokens"] == toks[:1]
        assert decode_tokens(lm, back) == [toks]
    row = {"layout": HC_LAYOUT, "accuracy": 1.0, "gen_accuracy": 0.25}
    assert judged_score(row) == 1.0 and judged_score(row | {"layout": MEM_LAYOUT}) == 0.25
