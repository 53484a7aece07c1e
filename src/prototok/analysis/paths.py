"""Paths between two solutions of one text (arXiv 2505.21189, Fig. 7): are they connected by solutions?

A solution is the point p = [e; m] (2d,). Two solutions are scored along the straight line between them and
along a quadratic Bezier curve whose control point is trained, as in the mode-connectivity work of Garipov
et al. (2018): a curve that keeps the text's accuracy where the line loses it says the solutions lie in one
connected valley. Every score is the one-pass forward and loss of onepass.layout_scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..layouts import DEFAULT_LAYOUT, LAYOUTS, Layout
from ..models import LoadedModel
from ..onepass import layout_scores
from .distances import cosine_distances


def point(e: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Solutions as points [e; m]: (..., d) and (..., d) -> (..., 2d)."""
    return torch.cat([e, m], dim=-1)


def split(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 2d) -> e (..., d), m (..., d)."""
    d = p.shape[-1] // 2
    return p[..., :d], p[..., d:]


def line_points(p0: torch.Tensor, p1: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """(1 - tau) p0 + tau p1: (P,) -> (P, D); exactly p0 at tau 0 and p1 at tau 1."""
    t = taus.to(p0.dtype).unsqueeze(1)  # (P, 1)
    return (1 - t) * p0 + t * p1


def bezier_points(p0: torch.Tensor, theta: torch.Tensor, p1: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """B(tau) = (1-tau)^2 p0 + 2 tau (1-tau) theta + tau^2 p1: (P,) -> (P, D); exactly p0, p1 at the ends."""
    t = taus.to(p0.dtype).unsqueeze(1)  # (P, 1)
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * theta + t**2 * p1


def arc_length(p0: torch.Tensor, theta: torch.Tensor, p1: torch.Tensor, samples: int = 1000) -> float:
    """Length of the Bezier curve: sum of `samples` chord lengths (converges as samples^-2)."""
    pts = bezier_points(p0.double(), theta.double(), p1.double(), torch.linspace(0, 1, samples + 1))
    return float((pts[1:] - pts[:-1]).norm(dim=-1).sum())


def _point_scores(lm: LoadedModel, lay: Layout, tokens: list[int], pts: torch.Tensor):
    """One-pass loss (P,) with grad and correct counts (P,) of the text at each point (P, 2d)."""
    e, m = split(pts.to(lm.device))  # (P, d) each
    return layout_scores(lm, lay, e, m, [tokens] * pts.shape[0])


@torch.no_grad()
def point_scores(
    lm: LoadedModel,
    tokens: list[int],
    points: torch.Tensor,
    *,
    layout: Layout = LAYOUTS[DEFAULT_LAYOUT],
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss (P,) and token accuracy (P,) of one text's one-pass decoding at each point [e; m] (P, 2d)."""
    losses, accs = [], []
    for i in range(0, points.shape[0], batch_size):
        loss, correct = _point_scores(lm, layout, tokens, points[i : i + batch_size])
        losses.append(loss.cpu())
        accs.append(correct.cpu().float() / len(tokens))
    return torch.cat(losses), torch.cat(accs)


@dataclass
class BezierFit:
    theta: torch.Tensor  # (2d,) the trained control point, on CPU
    losses: list[float]  # training loss per step: mean one-pass loss over that step's random taus
    steps: int
    seconds: float


def fit_bezier(
    lm: LoadedModel,
    tokens: list[int],
    p0: torch.Tensor,
    p1: torch.Tensor,
    *,
    layout: Layout = LAYOUTS[DEFAULT_LAYOUT],
    steps: int = 200,
    lr: float = 0.01,
    taus_per_step: int = 8,
    seed: int = 0,
) -> BezierFit:
    """Train the control point theta with Adam on tau ~ U(0, 1), minimising the one-pass loss at B(tau).

    theta starts at the midpoint (p0 + p1) / 2, where the curve is the straight line. lr is relative: Adam
    moves each coordinate by about lr times the rms gap between the endpoints, taken separately for the e
    and m halves, because e and m can live at very different scales (a recipe may draw e 20x larger) and an
    absolute step that suits one scrambles the other.
    """
    dev = lm.device
    p0, p1 = p0.float().to(dev), p1.float().to(dev)
    mid_e, mid_m = split((p0 + p1) / 2)
    theta_e, theta_m = mid_e.clone().requires_grad_(), mid_m.clone().requires_grad_()  # (d,) each
    gap_e, gap_m = (g.pow(2).mean().sqrt().item() for g in split(p1 - p0))
    opt = torch.optim.Adam([{"params": [theta_e], "lr": lr * gap_e}, {"params": [theta_m], "lr": lr * gap_m}])
    gen = torch.Generator().manual_seed(seed)
    history, t0 = [], time.perf_counter()
    for _ in range(steps):
        taus = torch.rand(taus_per_step, generator=gen).to(dev)  # CPU stream: the same taus on any device
        theta = torch.cat([theta_e, theta_m])  # (2d,)
        loss, _ = _point_scores(lm, layout, tokens, bezier_points(p0, theta, p1, taus))
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(loss.detach())  # no .item() per step: one sync at the end
    losses = torch.stack(history).cpu().tolist() if history else []
    return BezierFit(torch.cat([theta_e, theta_m]).detach().cpu(), losses, steps, time.perf_counter() - t0)


@dataclass
class Connectivity:
    """Accuracy along the line and the trained Bezier curve between two solutions of one text (Fig. 7)."""

    taus: list[float]
    line_accuracy: list[float]
    line_loss: list[float]
    curve_accuracy: list[float]
    curve_loss: list[float]
    length_ratio: float  # arc length of the curve / length of the line (1.0: the curve is the line)
    cosine_distance: float  # between the two endpoints
    bezier: BezierFit

    def record(self) -> dict:
        """The stored form (the geometry table's "path" rows), without the control point itself."""
        return {
            "taus": self.taus,
            "line_accuracy": self.line_accuracy,
            "curve_accuracy": self.curve_accuracy,
            "line_loss": self.line_loss,
            "curve_loss": self.curve_loss,
            "length_ratio": self.length_ratio,
            "cosine_distance": self.cosine_distance,
            "bezier_seconds": self.bezier.seconds,
            "bezier_final_loss": self.bezier.losses[-1] if self.bezier.losses else None,
        }


def connect(
    lm: LoadedModel,
    tokens: list[int],
    p0: torch.Tensor,
    p1: torch.Tensor,
    *,
    points: int = 11,
    layout: Layout = LAYOUTS[DEFAULT_LAYOUT],
    steps: int = 200,
    lr: float = 0.01,
    taus_per_step: int = 8,
    seed: int = 0,
    batch_size: int = 32,
) -> Connectivity:
    """Fit the Bezier curve between p0 and p1, then score both paths at `points` evenly spaced taus."""
    bez = fit_bezier(lm, tokens, p0, p1, layout=layout, steps=steps, lr=lr, taus_per_step=taus_per_step, seed=seed)
    p0, p1 = p0.float(), p1.float()
    taus = torch.linspace(0, 1, points)
    line_loss, line_acc = point_scores(lm, tokens, line_points(p0, p1, taus), layout=layout, batch_size=batch_size)
    pts = bezier_points(p0, bez.theta, p1, taus)
    curve_loss, curve_acc = point_scores(lm, tokens, pts, layout=layout, batch_size=batch_size)
    ratio = arc_length(p0, bez.theta, p1) / max(float((p1 - p0).double().norm()), 1e-12)
    return Connectivity(
        taus.tolist(),
        line_acc.tolist(),
        line_loss.tolist(),
        curve_acc.tolist(),
        curve_loss.tolist(),
        ratio,
        float(cosine_distances(torch.stack([p0, p1]))[0, 1]),
        bez,
    )
