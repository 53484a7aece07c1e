"""Optimiser probe: evaluations (forward+backward passes) to reconstruct one text, per optimiser.

One text at a time (batch 1), layout 'e m^(N-1)', default model. Every evaluation scores (e, m) through
prototok.onepass.layout_scores (the project's forward pass and loss; --method lbfgs-focal its focal loss).
Methods:
  fast-e50     prototok.fit.fit with the project's recipe (AdamW lr 5e-2, e at 50x); steps_run = evaluations
  lbfgs        torch.optim.LBFGS (strong Wolfe) on (u, m), e = --e-param * u, same init draw as fast-e50
  curr-lbfgs   prefix curriculum 8, 16, ..., N: each stage L-BFGS warm-started from the previous stage's point
  curr-adam    the same curriculum with fast-e50 (fit.fit warm_start) in every stage
  curr-lbfgs-r curr-lbfgs, but stage 1 re-draws the init after --restart-after evaluations without solving
  curr-hyb     curriculum: stage 1 fast-e50, later stages L-BFGS
  adam-lbfgs   fast-e50 for --warm-steps evaluations (leaves the bad start region), then L-BFGS from its best point
  curr-al      curriculum whose stage 1 is adam-lbfgs and later stages L-BFGS (used for N=128)
  lbfgs-focal  lbfgs on a focal cross-entropy (1-p)^gamma * CE: smooth, weighs the wrong tokens up
Every closure call / fitter step counts as one evaluation; a fit stops at the first evaluated point with
accuracy 1.0, or at the cap (all stages together). One JSON line per fit, appended to --out as it finishes.
An L-BFGS fit keeps its best point (most tokens right, then lowest loss); `wrong` lists the positions that
point still gets wrong (first 20), decoded once after the fit, outside its timed seconds.

    python studies/optimizer_probe.py --n 32 --texts 0,1,2,3 --cap 600 --methods fast-e50,adam-lbfgs \\
        --out studies/results/optimizer_probe_cpu.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, replace

import torch

from prototok.fit import fit, init_stream
from prototok.layouts import get_layout
from prototok.models import LoadedModel, load_model
from prototok.onepass import decode_vectors, layout_scores
from prototok.recipes import get_recipe
from prototok.sources import load_samples, truncate

LAYOUT = get_layout("e m^(N-1)")
E_SCALE = 50.0  # e's init std relative to m's (fast-e50); the L-BFGS parametrisation scale is --e-param


@dataclass(frozen=True)
class Settings:
    """Everything a fit reads from the command line; `deadline` (perf_counter time, --max-seconds) is set per fit."""

    cap: int = 600
    history: int = 50
    gamma: float = 2.0
    smallest: int = 8
    stage_frac: float = 0.5
    e_param: float = 50.0
    warm_steps: int = 100
    restart_after: int = 40
    first_cap: int = 160
    e_init: float = 1.0
    m_init: float = 1.0
    init_seed: int = 0
    deadline: float = math.inf


class Stop(Exception):
    """Raised inside the L-BFGS closure: solved, the evaluation cap, or the deadline is reached."""


class Evaluator:
    """Loss + correct count of (e, m) on one token list, through onepass.layout_scores; counts evaluations and
    keeps the best point (most tokens right, then lowest loss)."""

    def __init__(self, lm: LoadedModel, toks: list[int], focal: float = 0.0):
        self.lm, self.toks, self.n, self.focal = lm, toks, len(toks), focal
        self.evals, self.nonfinite, self.best, self.trace = 0, 0, None, []

    def __call__(self, e: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(loss with grad, correct count) at (e, m), both (d,)."""
        loss, correct = layout_scores(self.lm, LAYOUT, e[None], m[None], [self.toks], focal=self.focal)
        loss, correct = loss[0], int(correct[0])
        self.evals += 1
        key = (correct, -float(loss.detach()))
        if self.best is None or key > self.best[0]:
            self.best = (key, e.detach().clone(), m.detach().clone())
        if self.evals % 25 == 0:
            self.trace.append((self.evals, round(self.best[0][0] / self.n, 4)))
        return loss, correct

    @property
    def best_acc(self) -> float:
        return self.best[0][0] / self.n if self.best else 0.0

    @property
    def best_point(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.best[1], self.best[2]


def wrong_positions(lm: LoadedModel, toks: list[int], e: torch.Tensor, m: torch.Tensor) -> list[int]:
    """The positions one forward pass from (e, m) gets wrong (onepass.decode_vectors)."""
    (got,) = decode_vectors(lm, e[None], m[None], LAYOUT, [len(toks)])
    return [i for i, (a, b) in enumerate(zip(got, toks)) if a != b]


def draw(d: int, seed: int, index: int, s: Settings) -> tuple[torch.Tensor, torch.Tensor]:
    """The init stream prototok.fit draws for text `index` (fit.init_stream): e at 50x, then m."""
    gen = init_stream(seed, index)
    e = torch.randn(d, generator=gen) * E_SCALE * s.e_init
    m = torch.randn(d, generator=gen) * s.m_init
    return e, m


def lbfgs_stage(ev: Evaluator, e0, m0, cap: int, s: Settings):
    """L-BFGS on (u, m), e = e_param * u, until solved or ev.evals reaches cap. Returns (solved, e, m, reason) of
    the best point."""
    P = s.e_param
    u = (e0 / P).clone().requires_grad_(True)
    m = m0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [u, m], lr=1.0, max_iter=10**6, max_eval=10**7, history_size=s.history, line_search_fn="strong_wolfe",
        tolerance_grad=1e-12, tolerance_change=1e-15,
    )  # fmt: skip

    def closure():
        if ev.evals >= cap:
            raise Stop("cap")
        if time.perf_counter() > s.deadline:
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
    except Stop as stop:
        reason = str(stop)
    e_b, m_b = ev.best_point
    return reason == "solved", e_b, m_b, reason


def run_lbfgs(lm, toks, idx, s: Settings, focal: bool = False) -> dict:
    ev = Evaluator(lm, toks, focal=s.gamma if focal else 0.0)
    e0, m0 = draw(lm.hidden_size, s.init_seed, idx, s)
    solved, _, _, reason = lbfgs_stage(ev, e0, m0, s.cap, s)
    return dict(solved=solved, evals=ev.evals, best_acc=ev.best_acc, stop=reason, nonfinite=ev.nonfinite,
                wrong=ev.best_point, trace=ev.trace)  # fmt: skip


def stages_for(n: int, smallest: int) -> list[int]:
    lens = [n]
    while lens[-1] // 2 >= smallest:
        lens.append(lens[-1] // 2)
    return lens[::-1]


def stage_cap(k: int, n: int, cap: int, frac: float) -> int:
    return cap if k == n else max(30, int(frac * cap * k / n))


def adam_stage(lm, toks, idx, s: Settings, warm, cap: int):
    """fast-e50 (fit.fit) from `warm` (or the cold draw): (solved, e, m, evals, acc)."""
    r = run_fast(lm, toks, idx, s, warm=warm, cap=cap)
    return r.solved, r.e, r.m, r.steps_run, r.accuracy


def run_curr(lm, toks, idx, s: Settings, first="lbfgs", rest="lbfgs", restart_after=0) -> dict:
    """Prefix curriculum smallest, 2*smallest, ..., N; stage 1 uses `first`, the others `rest`.

    restart_after > 0: stage 1 (L-BFGS) re-draws (e, m) from a new init stream whenever an attempt has not
    solved the prefix within that many evaluations, up to --first-cap evaluations for the stage."""
    n = len(toks)
    e, m = draw(lm.hidden_size, s.init_seed, idx, s)
    total, info, solved, best = 0, [], False, None
    for j, k in enumerate(stages_for(n, s.smallest)):
        budget = min(stage_cap(k, n, s.cap, s.stage_frac), s.cap - total)
        if j == 0 and restart_after and k < n:
            budget = min(s.first_cap, s.cap - total)
        if budget <= 0:
            break
        opt = first if j == 0 else rest
        if opt == "al":  # adam-lbfgs on this prefix (cold or warm)
            warm = None if j == 0 else (e, m)
            r = run_adam_lbfgs(lm, toks[:k], idx, s, warm=warm, cap=budget)
            solved, e, m, used, acc = r["solved"], r["e"], r["m"], r["evals"], r["best_acc"]
            info.append(dict(k=k, opt=opt, evals=used, acc=round(acc, 4), adam_evals=r["adam_evals"]))
        elif opt == "adam":
            solved, e, m, used, acc = adam_stage(lm, toks[:k], idx, s, None if j == 0 else [(e, m)], budget)
            info.append(dict(k=k, opt=opt, evals=used, acc=round(acc, 4)))
        elif j == 0 and restart_after:
            used, attempt, acc, kept = 0, 0, -1.0, None
            while used < budget:
                ev = Evaluator(lm, toks[:k])
                e0, m0 = draw(lm.hidden_size, s.init_seed + 1000 * attempt, idx, s)
                solved, e1, m1, reason = lbfgs_stage(ev, e0, m0, min(restart_after, budget - used), s)
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
            solved, e, m, reason = lbfgs_stage(ev, e, m, budget, s)
            used, acc = ev.evals, ev.best_acc
            info.append(dict(k=k, opt=opt, evals=used, acc=round(acc, 4), stop=reason, nonfinite=ev.nonfinite))
        total += used
        if k == n:
            best = acc
        print(f"  stage {info[-1]}", flush=True)
        if time.perf_counter() > s.deadline:
            break
    ok = info[-1]["k"] == n
    return dict(solved=ok and solved, evals=total, best_acc=best, stages=info)


def run_adam_lbfgs(lm, toks, idx, s: Settings, warm=None, cap=None) -> dict:
    """fast-e50 for --warm-steps evaluations, then L-BFGS from its best point (e, m kept in the result)."""
    cap = cap or s.cap
    solved, e, m, used, acc = adam_stage(lm, toks, idx, s, None if warm is None else [warm], min(s.warm_steps, cap))
    if solved or used >= cap:
        return dict(solved=solved, evals=used, best_acc=acc, adam_evals=used, e=e, m=m)
    ev = Evaluator(lm, toks)
    solved, e, m, reason = lbfgs_stage(ev, e, m, cap - used, s)
    return dict(solved=solved, evals=used + ev.evals, best_acc=ev.best_acc, adam_evals=used, adam_acc=acc, stop=reason,
                nonfinite=ev.nonfinite, wrong=(e, m), trace=ev.trace, e=e, m=m)  # fmt: skip


def run_fast(lm, toks, idx, s: Settings, warm=None, cap=None):
    """The project's fast-e50 via prototok.fit.fit; max_steps = cap - 1 makes steps_run <= cap evaluations."""
    rec = get_recipe("fast-e50", max_steps=(cap or s.cap) - 1)
    return fit(lm, [toks], recipe=rec, batch_size=1, seed=s.init_seed, init_ids=[idx], warm_start=warm)[0]


def run_fast_e50(lm, toks, idx, s: Settings) -> dict:
    r = run_fast(lm, toks, idx, s)
    return dict(solved=r.solved, evals=r.steps_run, best_acc=r.accuracy)


METHODS = {
    "fast-e50": run_fast_e50,
    "lbfgs": lambda lm, t, i, s: run_lbfgs(lm, t, i, s),
    "lbfgs-focal": lambda lm, t, i, s: run_lbfgs(lm, t, i, s, focal=True),
    "curr-lbfgs": lambda lm, t, i, s: run_curr(lm, t, i, s, "lbfgs", "lbfgs"),
    "curr-lbfgs-r": lambda lm, t, i, s: run_curr(lm, t, i, s, "lbfgs", "lbfgs", s.restart_after),
    "curr-adam": lambda lm, t, i, s: run_curr(lm, t, i, s, "adam", "adam"),
    "curr-hyb": lambda lm, t, i, s: run_curr(lm, t, i, s, "adam", "lbfgs"),
    "adam-lbfgs": lambda lm, t, i, s: {k: v for k, v in run_adam_lbfgs(lm, t, i, s).items() if k not in ("e", "m")},
    "curr-al": lambda lm, t, i, s: run_curr(lm, t, i, s, "al", "lbfgs"),
}


def texts(lm, n_tokens: int, count: int, seed: int, min_chars: int) -> list[list[int]]:
    """The first `count` wiki samples (of count * 3 + 5 drawn with `seed`) with at least n_tokens, cut to it."""
    out = []
    for sample in load_samples("wiki", count * 3 + 5, seed=seed, min_chars=min_chars):
        t = truncate(lm.tokenizer, sample, n_tokens)
        if t is not None:
            out.append(t)
        if len(out) == count:
            break
    return out


def main() -> None:
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
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", default=None, help="append each fit's JSON line to this file")
    ap.add_argument("--tag", default="", help="free label stored with each line")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    settings = Settings(
        cap=a.cap, history=a.history, gamma=a.gamma, smallest=a.smallest, stage_frac=a.stage_frac,
        e_param=a.e_param, warm_steps=a.warm_steps, restart_after=a.restart_after, first_cap=a.first_cap,
        e_init=a.e_init, m_init=a.m_init, init_seed=a.init_seed,
    )  # fmt: skip
    lm = load_model(a.model, a.device)
    idxs = [int(x) for x in a.texts.split(",")]
    all_texts = texts(lm, a.n, max(idxs) + 1, a.data_seed, a.min_chars)
    methods = a.methods.split(",")
    jobs = [(i, mt) for i in idxs for mt in methods] if a.order == "text" else [(i, mt) for mt in methods for i in idxs]
    for i, meth in jobs:
        toks = all_texts[i]
        t0 = time.perf_counter()
        s = replace(settings, deadline=t0 + a.max_seconds if a.max_seconds else math.inf)
        res = METHODS[meth](lm, toks, i, s)
        secs = time.perf_counter() - t0
        if "wrong" in res:  # the best point, decoded now: its positions still wrong, in place
            res["wrong"] = wrong_positions(lm, toks, *res["wrong"])[:20]
        line = dict(method=meth, N=a.n, text=i, **res, seconds=round(secs, 1),
                    s_per_eval=round(secs / max(res["evals"], 1), 3), cap=a.cap, history=a.history,
                    e_param=a.e_param, smallest=a.smallest, restart_after=a.restart_after, e_init=a.e_init,
                    m_init=a.m_init, data_seed=a.data_seed, init_seed=a.init_seed, tag=a.tag)  # fmt: skip
        if line.get("best_acc") is not None:
            line["best_acc"] = round(line["best_acc"], 4)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(line) + "\n")
        print(json.dumps({k: v for k, v in line.items() if k != "trace"}), flush=True)


if __name__ == "__main__":
    main()
