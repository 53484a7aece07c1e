"""`generated:SOURCE`: the model's own continuations (temperature 1, no top-k/top-p, EOS suppressed) of the
first tokens of samples from another source, the papers' "PG-19 (gen)". The contexts are loaded by the
registry (prototok.sources), which resolves the inner spec; this module only generates from them."""

from __future__ import annotations

from ..fit import init_id
from ..tokens import tokenize
from .sample import Sample
from .windows import sentence_starts

# how much of a context sample the model sees before it continues (capped at a quarter of its context window)
GEN_CONTEXT_TOKENS = 64


def context_tokens(lm) -> int:
    """Tokens of a context the model continues from: GEN_CONTEXT_TOKENS, at most a quarter of its window."""
    return min(GEN_CONTEXT_TOKENS, lm.max_positions // 4)


def context_chars(lm) -> int:
    """The min_chars a context sample is loaded with: enough text for context_tokens(lm) tokens."""
    return context_tokens(lm) * 8


def _after_first_sentence(text: str) -> str:
    """A continuation starts mid-sentence; the target starts at its next sentence (all of it if none)."""
    starts = sentence_starts(text)
    return text[starts[0] :].strip() if starts else text.strip()


def sample_continuations(lm, ids: list[int], seed: int, *, max_new_tokens: int, **generate_kw):
    """The model's own continuations of `ids`: temperature 1, no top-k/top-p, EOS suppressed (so a text runs as
    long as asked), drawn from a torch stream seeded with `seed` alone and left as it was found. Returns the
    generated ids after the prompt, (sequences, new tokens)."""
    import torch

    tok, model = lm.tokenizer, lm.model
    eos = tok.eos_token_id if tok.eos_token_id is not None else model.generation_config.eos_token_id
    eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    pad = tok.pad_token_id if tok.pad_token_id is not None else (eos[0] if eos else 0)
    input_ids = torch.tensor([ids], device=lm.device)  # (1, T)
    devices = [lm.device] if lm.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        with torch.autocast(lm.device.type, dtype=lm.autocast_dtype, enabled=lm.autocast_dtype is not None):
            gen = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                suppress_tokens=eos or None,
                pad_token_id=pad,
                **generate_kw,
            )
    return gen[:, len(ids) :]


def continue_contexts(lm, contexts: list[Sample], seed: int, min_chars: int) -> list[Sample]:
    """The model's own continuation of the first tokens of each context (loaded with context_chars(lm)):
    doc/offset are those of the context; text is the continuation from its first sentence boundary on (the
    whole continuation if it has none). EOS is suppressed so the continuation reaches min_chars (or the model's
    context limit)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    tok = lm.tokenizer
    ctx_len = context_tokens(lm)

    class EnoughChars(StoppingCriteria):
        def __init__(self, start: int):
            self.start = start

        def __call__(self, input_ids, scores, **kwargs):
            done = len(_after_first_sentence(tok.decode(input_ids[0, self.start :], skip_special_tokens=True)))
            done = done >= min_chars
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    out = []
    for i, ctx in enumerate(contexts):
        ids = tokenize(tok, ctx.text)[:ctx_len]
        gen = sample_continuations(  # seeded per sample: sample i does not depend on the others
            lm,
            ids,
            init_id(seed, i),
            max_new_tokens=lm.max_positions - len(ids),
            stopping_criteria=StoppingCriteriaList([EnoughChars(len(ids))]),
        )
        text = _after_first_sentence(tok.decode(gen[0].tolist(), skip_special_tokens=True))
        out.append(Sample(f"generated:{ctx.source}", ctx.doc, ctx.offset, text))
    return out


def continuations(lm, contexts: list[Sample], per_context: int, length: int, data_seed: int = 0):
    """(source key, samples): `per_context` continuations of each context, as continue_contexts but several per
    context; sample i continues context i // per_context. Each context has its own torch stream, so adding
    contexts keeps the earlier texts. `length` (tokens per text) sets how much is generated: twice that plus
    room for the cut at the first sentence boundary."""
    tok = lm.tokenizer
    ctx_len = context_tokens(lm)
    new = min(lm.max_positions - ctx_len, 2 * length + 48)
    out = []
    for ci, ctx in enumerate(contexts):
        gen = sample_continuations(  # (per_context, new)
            lm,
            tokenize(tok, ctx.text)[:ctx_len],
            init_id(data_seed, ci) * 7919 + per_context,  # another count per context: another stream
            max_new_tokens=new,
            min_new_tokens=new,
            num_return_sequences=per_context,
        )
        for row in gen.tolist():
            text = _after_first_sentence(tok.decode(row, skip_special_tokens=True))
            out.append(Sample(f"generated:{ctx.source}", ctx.doc, ctx.offset, text))
    extra = f",seed={data_seed}" if data_seed else ""
    return f"generated:{contexts[0].source}@continuations={per_context}{extra}", out
