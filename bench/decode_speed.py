"""One-pass decode vs greedy autoregressive decoding of the same number of tokens, same model, one run.

One pass: prototok's decode path (embed [e, m, ...], backbone, LM head, argmax) at each (N, batch).
Autoregressive: HF `generate` with a KV cache from one input embedding per sequence (the cramming baseline's
decode), greedy, exactly N new tokens, at the same batch size. Timing uses random vectors: the cost does not
depend on their values.

    python bench/decode_speed.py --batches 1 64                     # CPU: N = 64 128 256
    python bench/decode_speed.py --device cuda --batches 1 64       # GPU
"""

from __future__ import annotations

import argparse

import torch

from common import RunLog, model_options, out_option, timed
from prototok.layouts import batch_indices, get_layout
from prototok.models import load_model
from prototok.onepass import predict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_options(ap)
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--generate-repeats", type=int, default=1)
    out_option(ap)
    args = ap.parse_args()
    lm = load_model(args.model, args.device)
    log = RunLog(args.out, lm.device)
    d, dev, lay = lm.hidden_size, lm.device, get_layout("e m^(N-1)")
    g = torch.Generator().manual_seed(0)
    for n in args.lengths:
        for b in args.batches:
            mem = torch.randn(b, 1, d, generator=g).to(dev)  # b sequences, each from its own one embedding

            def generate(mem=mem, n=n) -> None:
                with (
                    torch.no_grad(),
                    torch.autocast(dev.type, lm.autocast_dtype or torch.float32, enabled=lm.autocast_dtype is not None),
                ):
                    lm.model.generate(
                        inputs_embeds=mem, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
                    )

            slots, targets = batch_indices(lay, [[0] * n] * b)
            slots, targets = slots.to(dev), targets.to(dev)
            e, m = torch.randn(b, d, generator=g).to(dev), torch.randn(b, d, generator=g).to(dev)
            one = timed(lambda e=e, m=m, s=slots, t=targets: predict(lm, e, m, s, t), dev, args.repeats)
            ar = timed(generate, dev, args.generate_repeats)
            row = {
                "n_tokens": n,
                "batch": b,
                "device": str(dev),
                "one_pass_ms": round(one * 1e3, 2),
                "one_pass_tokens_per_s": round(n * b / one, 1),
                "generate_ms": round(ar * 1e3, 1),
                "generate_tokens_per_s": round(n * b / ar, 1),
                "speedup": round(ar / one, 1),  # same tokens, same batch: the latency ratio is the tokens/s ratio
            }
            log.add(row)


if __name__ == "__main__":
    main()
