"""Per-row optimisers: row r of every parameter belongs to one text, and each text's trajectory is its own.

A batched fit evaluates all texts in one forward+backward; each row is then updated from its own gradient and
its own state, so a text's result does not depend on which texts share its batch, or when it entered it.

- RowAdamW: torch.optim.AdamW's update with a step count per row (the paper's optimiser).
- RowLBFGS: limited-memory BFGS with a backtracking (Armijo) line search, one evaluation per step. A text has
  only 2 x d numbers (1152 on SmolLM2-135M), small enough for a quasi-Newton method, which takes far fewer
  evaluations than Adam's small steps on this problem (docs/findings/recipes.md). Each step evaluates every row at its
  trial point; a row whose trial lowered its loss enough accepts it (and updates its curvature history), any
  other backtracks, so every row costs exactly one evaluation per step and the batch stays in lock-step.
- RowHybrid: AdamW for a row's first `lbfgs_after` steps, L-BFGS after (Adam leaves the flat start, where
  a cold L-BFGS can stall, then L-BFGS converges).

All take step(rows, loss): rows (R,) slot indices, loss (R,) their losses at the current parameters, with
the gradients in .grad. Parameters are scaled per tensor (lr_scales, e.g. e at 50x m): L-BFGS works on
p / scale, so every coordinate it sees has unit scale.
"""

from __future__ import annotations

import math

import torch

from .recipes import Recipe


class RowAdamW:
    """torch.optim.AdamW's update, but with a step count per row.

    torch's AdamW keeps one step count per tensor; a text entering a slot mid-run would then get another
    text's bias correction and learning-rate schedule. Per-row counts keep every text's trajectory its own.
    """

    tolerates_nonfinite = False  # a NaN/inf loss is the user's settings: reported, not stepped over

    def __init__(self, params: list[torch.Tensor], recipe: Recipe, lr_scales: list[float] | None = None):
        self.params, self.r = params, recipe
        self.lr_scales = lr_scales or [1.0] * len(params)
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.steps = [torch.zeros(p.shape[0], device=p.device) for p in params]

    def reset(self, row: int, warm: bool = False) -> None:
        for i, p in enumerate(self.params):
            if p.shape[0] > 1 or row == 0:
                self.exp_avg[i][row].zero_()
                self.exp_avg_sq[i][row].zero_()
                self.steps[i][row] = 0

    def lr(self, t: torch.Tensor) -> torch.Tensor:
        """Learning rate at per-row step t (1-based)."""
        r = self.r
        if r.schedule == "constant":
            return torch.full_like(t, r.lr)
        period = r.schedule_steps or max(r.max_steps, 1)
        frac = (t - 1).clamp(max=period) / period
        return r.lr * (r.min_lr_ratio + (1 - r.min_lr_ratio) * 0.5 * (1 + torch.cos(math.pi * frac)))

    @torch.no_grad()
    def step(self, rows: torch.Tensor, loss: torch.Tensor | None = None) -> None:
        """Update the given rows of per-text params (and every shared param); loss is not needed."""
        b1, b2 = self.r.betas
        for p, ea, eas, st, scale in zip(self.params, self.exp_avg, self.exp_avg_sq, self.steps, self.lr_scales):
            if p.grad is None:
                continue
            idx = rows if p.shape[0] > 1 else torch.zeros(1, dtype=torch.long, device=p.device)
            g = p.grad[idx]  # (R, d)
            st[idx] += 1
            t = st[idx].unsqueeze(1)  # (R, 1)
            lr = self.lr(t) * scale
            w = p[idx] * (1 - lr * self.r.weight_decay)
            a = ea[idx].mul(b1).add_(g, alpha=1 - b1)
            s = eas[idx].mul(b2).addcmul_(g, g, value=1 - b2)
            denom = (s / (1 - b2**t)).sqrt().add_(self.r.eps)
            p[idx] = w - lr / (1 - b1**t) * a / denom
            ea[idx], eas[idx] = a, s
            p.grad = None


class RowLBFGS:
    """L-BFGS per row, vectorised over the batch, one evaluation per step (see the module docstring).

    Row state: the accepted point x (unit-scale coordinates), its loss and gradient, the search direction d, the
    trial step t, and the last `history` curvature pairs (s, y). The two-loop recursion runs per row (a row's
    history length differs), on (history, D) tensors: cheap next to a forward pass.
    """

    tolerates_nonfinite = True  # a non-finite trial is a failed line-search step, not an error

    C1 = 1e-4  # Armijo's sufficient-decrease constant (Nocedal & Wright's usual value)

    def __init__(self, params: list[torch.Tensor], recipe: Recipe, lr_scales: list[float] | None = None):
        if any(p.shape[0] != params[0].shape[0] for p in params):
            raise ValueError("RowLBFGS needs per-row parameters only (no shared vector)")
        self.params, self.r = params, recipe
        self.scales = lr_scales or [1.0] * len(params)
        slots, dim = params[0].shape[0], sum(p[0].numel() for p in params)
        dev, h = params[0].device, recipe.history
        self.x = torch.zeros(slots, dim, device=dev)
        self.fx = torch.zeros(slots, device=dev)
        self.gx = torch.zeros(slots, dim, device=dev)
        self.d = torch.zeros(slots, dim, device=dev)
        self.t = torch.zeros(slots, device=dev)
        self.s = torch.zeros(slots, h, dim, device=dev)  # curvature pairs, oldest first
        self.y = torch.zeros(slots, h, dim, device=dev)
        self.pairs = [0] * slots
        self.started = [False] * slots

    def reset(self, row: int, warm: bool = False) -> None:
        self.pairs[row], self.started[row] = 0, False

    def _flat(self, row: int, grad: bool) -> torch.Tensor:
        """Row `row` of every param (or its gradient) as one unit-scale vector (D,)."""
        if grad:  # d loss / d(p / scale) = scale * d loss / d p
            return torch.cat([(p.grad[row] * sc).reshape(-1) for p, sc in zip(self.params, self.scales)])
        return torch.cat([(p[row] / sc).reshape(-1) for p, sc in zip(self.params, self.scales)])

    def _set(self, row: int, z: torch.Tensor) -> None:
        i = 0
        for p, sc in zip(self.params, self.scales):
            n = p[row].numel()
            p[row] = (z[i : i + n] * sc).view_as(p[row])
            i += n

    def _direction(self, row: int, g: torch.Tensor) -> torch.Tensor:
        """-H g by the two-loop recursion over the row's history (steepest descent without history)."""
        k = self.pairs[row]
        if k == 0:
            return -g
        s, y = self.s[row, :k], self.y[row, :k]  # (k, D)
        rho = 1.0 / (y * s).sum(1)  # (k,)
        q, alpha = g.clone(), torch.zeros(k, device=g.device)
        for i in range(k - 1, -1, -1):
            alpha[i] = rho[i] * (s[i] @ q)
            q -= alpha[i] * y[i]
        q *= (s[-1] @ y[-1]) / (y[-1] @ y[-1])  # initial Hessian scale, from the newest pair
        for i in range(k):
            q += (alpha[i] - rho[i] * (y[i] @ q)) * s[i]
        return -q

    def _push(self, row: int, s: torch.Tensor, y: torch.Tensor) -> None:
        if (s @ y) <= 1e-10 * (y @ y):  # not positive curvature: skip, keeps H positive definite
            return
        k = self.pairs[row]
        if k == self.s.shape[1]:  # full: drop the oldest
            self.s[row] = torch.roll(self.s[row], -1, 0)
            self.y[row] = torch.roll(self.y[row], -1, 0)
            k -= 1
        self.s[row, k], self.y[row, k] = s, y
        self.pairs[row] = k + 1

    def _first_step(self, g: torch.Tensor) -> float:
        """torch.optim.LBFGS's first step: lr * min(1, 1 / |g|_1), so a first move cannot be huge."""
        return self.r.lbfgs_lr * min(1.0, 1.0 / max(g.abs().sum().item(), 1e-12))

    @torch.no_grad()
    def step(self, rows: torch.Tensor, loss: torch.Tensor) -> None:
        """rows (R,), loss (R,) at each row's current (trial) parameters; gradients in .grad.
        A non-finite loss counts as a failed trial (the row backtracks)."""
        for j, row in enumerate(rows.tolist()):
            z, fz = self._flat(row, grad=False), float(loss[j])
            gz = self._flat(row, grad=True)
            finite = math.isfinite(fz) and bool(torch.isfinite(gz).all())
            started = self.started[row]
            if not started:
                if not finite:  # a bad start: nothing to backtrack to; leave it to the caller's restart
                    continue
                self.started[row], accept = True, True
            else:
                slope = float(self.gx[row] @ self.d[row])
                accept = finite and fz <= float(self.fx[row]) + self.C1 * float(self.t[row]) * slope
            if accept:
                if started:
                    self._push(row, z - self.x[row], gz - self.gx[row])
                self.x[row], self.fx[row], self.gx[row] = z, fz, gz
                d = self._direction(row, gz)
                if float(d @ gz) >= 0:  # not a descent direction (numerical noise): restart from -g
                    self.pairs[row], d = 0, -gz
                self.d[row] = d
                self.t[row] = self.r.lbfgs_lr if self.pairs[row] else self._first_step(gz)
            else:
                self.t[row] *= 0.5
                if float(self.t[row]) < 1e-10:  # the line search failed: forget the history, go downhill
                    self.pairs[row] = 0
                    self.d[row] = -self.gx[row]
                    self.t[row] = self._first_step(self.gx[row])
            self._set(row, self.x[row] + self.t[row] * self.d[row])
        for p in self.params:
            p.grad = None


class RowHybrid:
    """AdamW for each row's first recipe.lbfgs_after steps, then L-BFGS from where Adam left it; a warm-started
    row (reset(row, warm=True)) takes L-BFGS from its first step."""

    tolerates_nonfinite = True

    def __init__(self, params: list[torch.Tensor], recipe: Recipe, lr_scales: list[float] | None = None):
        self.adam = RowAdamW(params, recipe, lr_scales)
        self.lbfgs = RowLBFGS(params, recipe, lr_scales)
        self.after = recipe.lbfgs_after
        self.count = [0] * params[0].shape[0]

    def reset(self, row: int, warm: bool = False) -> None:
        """warm: the row starts from a given point (a shorter prefix's solution), already near a basin, so it
        goes straight to L-BFGS; AdamW's steps would only knock it out (docs/findings/long-texts.md)."""
        self.adam.reset(row)
        self.lbfgs.reset(row)
        self.count[row] = self.after if warm else 0

    @torch.no_grad()
    def step(self, rows: torch.Tensor, loss: torch.Tensor) -> None:
        idx = rows.tolist()
        late = [j for j, r in enumerate(idx) if self.count[r] >= self.after]
        early = [j for j, r in enumerate(idx) if self.count[r] < self.after]
        grads = [p.grad for p in self.adam.params]
        if late:  # L-BFGS first: both read .grad, and each clears it
            self.lbfgs.step(rows[late], loss[late])
            for p, g in zip(self.adam.params, grads):
                p.grad = g
        if early:
            self.adam.step(rows[early])
        for p in self.adam.params:
            p.grad = None
        for r in idx:
            self.count[r] += 1


def make_optimizer(params: list[torch.Tensor], recipe: Recipe, lr_scales: list[float] | None = None):
    """The recipe's per-row optimiser."""
    if recipe.optimizer == "lbfgs":
        return (RowHybrid if recipe.lbfgs_after else RowLBFGS)(params, recipe, lr_scales)
    return RowAdamW(params, recipe, lr_scales)
