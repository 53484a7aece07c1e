"""Issue #16 probe: evaluations (forward+backward passes) to reconstruct one text, per optimiser.

One text at a time (batch 1), layout 'e m^(N-1)', default model. Methods:
  fast-e50     prototok.fit.fit with the project's recipe (AdamW lr 5e-2, e at 50x); steps_run = evaluations
  lbfgs        torch.optim.LBFGS (strong Wolfe) on (u, m), e = 50 u, same init draw as fast-e50
  curr-lbfgs   prefix curriculum 8, 16, ..., N: each stage L-BFGS warm-started from the previous stage's point
  curr-adam    the same curriculum with fast-e50 (fit.fit warm_start) in every stage
  curr-lbfgs-r curr-lbfgs, but stage 1 re-draws the init after --restart-after evaluations without solving
  curr-hyb     curriculum: stage 1 fast-e50, later stages L-BFGS
  adam-lbfgs   fast-e50 for --warm-steps evaluations (leaves the bad start region), then L-BFGS from its best point
  curr-al      curriculum whose stage 1 is adam-lbfgs and later stages L-BFGS (used for N=128)
  lbfgs-focal  lbfgs on a focal cross-entropy (1-p)^gamma * CE: smooth, weighs the wrong tokens up
Every closure call / fitter step counts as one evaluation; a fit stops at the first evaluated point with
accuracy 1.0, or at the cap (all stages together). One JSON line per fit goes to --out as it finishes.

Run with: python bench/optimizer_probe.py --n 32 --texts 0,1,2,3 --cap 600 --methods fast-e50,adam-lbfgs ...
(torch on one thread; results in bench/results/optimizer_probe_cpu.jsonl)
"""

from __future__ import annotations

import argparse
import json
import time

import torch

torch.set_num_threads(1)

from prototok import data, load_model  # noqa: E402
from prototok.fit import fit  # noqa: E402
from prototok.layouts import batch_indices, get_layout  # noqa: E402
from prototok.onepass import embed_inputs, head, hidden_states  # noqa: E402
from prototok.recipes import get_recipe  # noqa: E402

LAYOUT = get_layout("e m^(N-1)")
E_SCALE = 50.0  # e's init std relative to m's (fast-e50); the L-BFGS parametrisation scale is --e-param
E_PARAM = [50.0]
DEADLINE = [
    float("inf")
]  # perf_counter time at which a fit stops (--max-seconds)  # e = E_PARAM * u inside L-BFGS (set from --e-param)


class Stop(Exception):
    """Raised inside the L-BFGS closure: solved, or the evaluation cap is reached."""


class Evaluator:
    """Loss + accuracy of (e, m) on one token list; counts evaluations and keeps the best point."""

    def __init__(self, lm, toks, loss="ce", gamma=2.0):
        self.lm, self.toks, self.n = lm, toks, len(toks)
        slots, targets = batch_indices(LAYOUT, [toks])
        self.slots = slots.to(lm.device)
        first = LAYOUT.first_target
        self.tgt = targets[0, first : first + self.n].to(lm.device)
        self.first, self.loss, self.gamma = first, loss, gamma
        self.evals, self.nonfinite, self.best, self.trace = 0, 0, None, []

    def __call__(self, e, m):
        """(loss with grad, correct count) at (e, m), both (d,)."""
        h = hidden_states(self.lm, embed_inputs(self.lm, e[None], m[None], self.slots))
        logits = head(self.lm, h[0, self.first : self.first + self.n])
        ce = torch.nn.functional.cross_entropy(logits, self.tgt, reduction="none")
        ok = logits.argmax(-1) == self.tgt
        correct = int(ok.sum())
        if self.loss == "focal":
            p = torch.exp(-ce)
            loss = ((1 - p).pow(self.gamma) * ce).mean()
        else:
            loss = ce.mean()
        self.evals += 1
        ce_mean = float(ce.detach().mean())
        key = (correct, -ce_mean)
        if self.best is None or key > self.best[0]:
            self.best = (key, e.detach().clone(), m.detach().clone())
            self.wrong = [int(j) for j in (~ok).nonzero()[:, 0]]
        if self.evals % 25 == 0:
            self.trace.append((self.evals, round(self.best[0][0] / self.n, 4)))
        return loss, correct

    @property
    def best_acc(self):
        return self.best[0][0] / self.n if self.best else 0.0


INIT = {"e": 1.0, "m": 1.0}  # extra factors on the drawn e and m (--e-init, --m-init); 1, 1 = fast-e50's draw


def draw(d, seed, index):
    """The same init stream prototok.fit draws for text `index` (init_ids=[index]): e at 50x, then m."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    e = torch.randn(d, generator=gen) * E_SCALE * INIT["e"]
    m = torch.randn(d, generator=gen) * INIT["m"]
    return e, m


def lbfgs_stage(ev, e0, m0, cap, history):
    """L-BFGS on (u, m), e = 50 u, until solved or ev.evals reaches cap. Returns (solved, e, m) of the best."""
    P = E_PARAM[0]
    u = (e0 / P).clone().requires_grad_(True)
    m = m0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [u, m], lr=1.0, max_iter=10**6, max_eval=10**7, history_size=history, line_search_fn="strong_wolfe",
        tolerance_grad=1e-12, tolerance_change=1e-15,
    )  # fmt: skip

    def closure():
        if ev.evals >= cap:
            raise Stop("cap")
        if time.perf_counter() > DEADLINE[0]:
            raise Stop("time")
        opt.zero_grad()
        loss, correct = ev(u * P, m)
        if correct == ev.n:
            raise Stop("solved")
        if not torch.isfinite(loss):  # never seen so far; a big finite value makes the line search back off
            ev.nonfinite += 1
            u.grad, m.grad = torch.zeros_like(u), torch.zeros_like(m)
            return torch.tensor(1e4)
        loss.backward()
        return loss

    reason = None
    last = -1
    try:
        while ev.evals < cap and ev.evals != last:  # step() returns only if LBFGS thinks it converged
            last = ev.evals
            opt.step(closure)
        reason = "stalled"
    except Stop as s:
        reason = str(s)
    _, e_b, m_b = ev.best
    return reason == "solved", e_b, m_b, reason


def run_lbfgs(lm, toks, idx, args, loss="ce"):
    ev = Evaluator(lm, toks, loss=loss, gamma=args.gamma)
    e0, m0 = draw(lm.hidden_size, args.init_seed, idx)
    solved, _, _, reason = lbfgs_stage(ev, e0, m0, args.cap, args.history)
    return dict(solved=solved, evals=ev.evals, best_acc=ev.best_acc, stop=reason, nonfinite=ev.nonfinite,
                wrong=ev.wrong[:20], trace=ev.trace)  # fmt: skip


def stages_for(n, smallest):
    lens = [n]
    while lens[-1] // 2 >= smallest:
        lens.append(lens[-1] // 2)
    return lens[::-1]


def stage_cap(k, n, cap, frac):
    return cap if k == n else max(30, int(frac * cap * k / n))


def adam_stage(lm, toks, idx, args, warm, cap):
    """fast-e50 (fit.fit) from `warm` (or the cold draw): (solved, e, m, evals, acc)."""
    r = run_fast(lm, toks, idx, args, warm=warm, cap=cap)
    return r.solved, r.e, r.m, r.steps_run, r.accuracy


def run_curr(lm, toks, idx, args, first="lbfgs", rest="lbfgs", restart_after=0):
    """Prefix curriculum smallest, 2*smallest, ..., N; stage 1 uses `first`, the others `rest`.

    restart_after > 0: stage 1 (L-BFGS) re-draws (e, m) from a new init stream whenever an attempt has not
    solved the prefix within that many evaluations, up to --first-cap evaluations for the stage."""
    n = len(toks)
    e, m = draw(lm.hidden_size, args.init_seed, idx)
    total, info, solved, best = 0, [], False, None
    for j, k in enumerate(stages_for(n, args.smallest)):
        budget = min(stage_cap(k, n, args.cap, args.stage_frac), args.cap - total)
        if j == 0 and restart_after and k < n:
            budget = min(args.first_cap, args.cap - total)
        if budget <= 0:
            break
        opt = first if j == 0 else rest
        if opt == "al":  # adam-lbfgs on this prefix (cold or warm)
            warm = None if j == 0 else (e, m)
            r = run_adam_lbfgs(lm, toks[:k], idx, args, warm=warm, cap=budget)
            solved, e, m, used, acc = r["solved"], r["e"], r["m"], r["evals"], r["best_acc"]
            info.append(dict(k=k, opt=opt, evals=used, acc=round(acc, 4), adam_evals=r["adam_evals"]))
        elif opt == "adam":
            solved, e, m, used, acc = adam_stage(lm, toks[:k], idx, args, None if j == 0 else [(e, m)], budget)
            info.append(dict(k=k, opt=opt, evals=used, acc=round(acc, 4)))
        elif j == 0 and restart_after:
            used, attempt, acc, kept = 0, 0, -1.0, None
            while used < budget:
                ev = Evaluator(lm, toks[:k])
                e0, m0 = draw(lm.hidden_size, args.init_seed + 1000 * attempt, idx)
                solved, e1, m1, reason = lbfgs_stage(ev, e0, m0, min(restart_after, budget - used), args.history)
                used += ev.evals
                attempt += 1
                if ev.best_acc > acc:
                    acc, kept = ev.best_acc, (e1, m1)
                if solved or reason == "time":
                    break
            e, m = kept
            info.append(dict(k=k, opt=opt, evals=used, acc=round(acc, 4), attempts=attempt))
        else:
            ev = Evaluator(lm, toks[:k])
            solved, e, m, reason = lbfgs_stage(ev, e, m, budget, args.history)
            used, acc = ev.evals, ev.best_acc
            info.append(dict(k=k, opt=opt, evals=used, acc=round(acc, 4), stop=reason, nonfinite=ev.nonfinite))
        total += used
        if k == n:
            best = acc
        print(f"  stage {info[-1]}", flush=True)
        if time.perf_counter() > DEADLINE[0]:
            break
    ok = info[-1]["k"] == n
    return dict(solved=ok and solved, evals=total, best_acc=best, stages=info)


def run_adam_lbfgs(lm, toks, idx, args, warm=None, cap=None):
    """fast-e50 for --warm-steps evaluations, then L-BFGS from its best point (e, m kept in the result)."""
    cap = cap or args.cap
    solved, e, m, used, acc = adam_stage(
        lm, toks, idx, args, None if warm is None else [warm], min(args.warm_steps, cap)
    )
    if solved or used >= cap:
        return dict(solved=solved, evals=used, best_acc=acc, adam_evals=used, e=e, m=m)
    ev = Evaluator(lm, toks)
    solved, e, m, reason = lbfgs_stage(ev, e, m, cap - used, args.history)
    return dict(solved=solved, evals=used + ev.evals, best_acc=ev.best_acc, adam_evals=used, adam_acc=acc, stop=reason,
                nonfinite=ev.nonfinite, wrong=ev.wrong[:20], trace=ev.trace, e=e, m=m)  # fmt: skip


def run_fast(lm, toks, idx, args, warm=None, cap=None):
    """The project's fast-e50 via prototok.fit.fit; max_steps = cap - 1 makes steps_run <= cap evaluations."""
    rec = get_recipe("fast-e50", max_steps=(cap or args.cap) - 1)
    r = fit(lm, [toks], recipe=rec, batch_size=1, seed=args.init_seed, init_ids=[idx], warm_start=warm)[0]
    return r


METHODS = {
    "fast-e50": None,
    "lbfgs": lambda lm, t, i, a: run_lbfgs(lm, t, i, a),
    "lbfgs-focal": lambda lm, t, i, a: run_lbfgs(lm, t, i, a, loss="focal"),
    "curr-lbfgs": lambda lm, t, i, a: run_curr(lm, t, i, a, "lbfgs", "lbfgs"),
    "curr-lbfgs-r": lambda lm, t, i, a: run_curr(lm, t, i, a, "lbfgs", "lbfgs", a.restart_after),
    "curr-adam": lambda lm, t, i, a: run_curr(lm, t, i, a, "adam", "adam"),
    "curr-hyb": lambda lm, t, i, a: run_curr(lm, t, i, a, "adam", "lbfgs"),
    "adam-lbfgs": lambda lm, t, i, a: {k: v for k, v in run_adam_lbfgs(lm, t, i, a).items() if k not in ("e", "m")},
    "curr-al": lambda lm, t, i, a: run_curr(lm, t, i, a, "al", "lbfgs"),
}


def texts(lm, n_tokens, count, seed, min_chars):
    samples = data.load_samples("wiki", count * 3 + 5, seed=seed, min_chars=min_chars)
    out = []
    for s in samples:
        t = data.truncate(lm.tokenizer, s, n_tokens)
        if t is not None:
            out.append(t)
        if len(out) == count:
            break
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32, help="tokens per text")
    ap.add_argument("--texts", default="0,1,2,3", help="comma-separated text indices (held-out wiki, data seed)")
    ap.add_argument("--methods", default="lbfgs,curr-lbfgs,fast-e50", help=",".join(METHODS))
    ap.add_argument(
        "--order", choices=("text", "method"), default="text", help="loop nesting: texts outer or methods outer"
    )
    ap.add_argument("--cap", type=int, default=600, help="evaluations per fit (all curriculum stages together)")
    ap.add_argument("--data-seed", type=int, default=7)
    ap.add_argument("--init-seed", type=int, default=0)
    ap.add_argument("--min-chars", type=int, default=2000)
    ap.add_argument("--history", type=int, default=50, help="L-BFGS history size")
    ap.add_argument("--gamma", type=float, default=2.0, help="focal loss exponent")
    ap.add_argument("--smallest", type=int, default=8, help="shortest curriculum stage")
    ap.add_argument("--stage-frac", type=float, default=0.5, help="intermediate stage cap = frac * cap * k / N")
    ap.add_argument("--e-param", type=float, default=50.0, help="L-BFGS optimises u with e = e_param * u")
    ap.add_argument("--warm-steps", type=int, default=100, help="adam-lbfgs: fast-e50 evaluations before L-BFGS")
    ap.add_argument("--restart-after", type=int, default=40, help="curr-lbfgs-r: stage-1 evaluations per attempt")
    ap.add_argument("--first-cap", type=int, default=160, help="curr-lbfgs-r: stage-1 evaluations, all attempts")
    ap.add_argument("--max-seconds", type=float, default=0, help="stop an L-BFGS fit after this wall time (0: none)")
    ap.add_argument("--e-init", type=float, default=1.0, help="L-BFGS methods: e drawn as e_init * 50 * N(0,1)")
    ap.add_argument("--m-init", type=float, default=1.0, help="L-BFGS methods: m drawn as m_init * N(0,1)")
    ap.add_argument("--out", default="/tmp/probe16/results.jsonl")
    ap.add_argument("--tag", default="", help="free label stored with each line")
    a = ap.parse_args()

    E_PARAM[0] = a.e_param
    INIT.update(e=a.e_init, m=a.m_init)
    lm = load_model()
    idxs = [int(x) for x in a.texts.split(",")]
    all_texts = texts(lm, a.n, max(idxs) + 1, a.data_seed, a.min_chars)
    methods = a.methods.split(",")
    jobs = [(i, mt) for i in idxs for mt in methods] if a.order == "text" else [(i, mt) for mt in methods for i in idxs]
    for i, meth in jobs:
        toks = all_texts[i]
        t0 = time.perf_counter()
        DEADLINE[0] = t0 + a.max_seconds if a.max_seconds else float("inf")
        if meth == "fast-e50":
            r = run_fast(lm, toks, i, a)
            res = dict(solved=r.solved, evals=r.steps_run, best_acc=r.accuracy)
        else:
            res = METHODS[meth](lm, toks, i, a)
        secs = time.perf_counter() - t0
        line = dict(method=meth, N=a.n, text=i, **res, seconds=round(secs, 1),
                    s_per_eval=round(secs / max(res["evals"], 1), 3), cap=a.cap, history=a.history,
                    e_param=a.e_param, smallest=a.smallest, restart_after=a.restart_after, e_init=a.e_init,
                    m_init=a.m_init, data_seed=a.data_seed, init_seed=a.init_seed, tag=a.tag)  # fmt: skip
        if line.get("best_acc") is not None:
            line["best_acc"] = round(line["best_acc"], 4)
        with open(a.out, "a") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps({k: v for k, v in line.items() if k != "trace"}), flush=True)


if __name__ == "__main__":
    main()
