"""Entropy-constrained assignment (ECQ) and its relevance-corrected zero cluster (ECQx), on a fixed grid."""

from __future__ import annotations

import math

import torch

CHUNK = 1 << 20  # weights per block of the (levels x weights) cost matrix


def _centroids(grid: torch.Tensor, step: float | torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """The values of the grid's levels for weights start..stop: (levels, 1) for one step, (levels, weights) for a
    step per weight (block-wise steps, expanded)."""
    if isinstance(step, torch.Tensor) and step.dim() > 0:
        return grid[:, None] * step.reshape(-1)[start:stop][None, :]
    return (grid * step)[:, None]


def cluster_pmf(w: torch.Tensor, grid: torch.Tensor, step: float | torch.Tensor, zero: int, floor: float = 0.5
                ) -> torch.Tensor:
    """Fractions of weights nearest to each level of `grid` (levels x step; a step per weight or one), with the zero
    cluster floored at `floor` (others rescaled)."""
    counts = torch.zeros(len(grid), dtype=torch.float64)
    flat = w.reshape(-1)
    for start in range(0, flat.numel(), CHUNK):
        chunk = flat[start:start + CHUNK]
        nearest = torch.argmin((chunk[None, :] - _centroids(grid, step, start, start + CHUNK)) ** 2, dim=0)
        counts += torch.bincount(nearest, minlength=len(grid)).to(torch.float64)
    pmf = counts / max(flat.numel(), 1)
    if pmf[zero] < floor:
        others = pmf.sum() - pmf[zero]
        if others > 0:
            pmf = pmf * (1 - floor) / others
        pmf[zero] = floor
    return pmf


def lambda_max(w: torch.Tensor, grid: torch.Tensor, step: float | torch.Tensor, info: torch.Tensor, zero: int
               ) -> float:
    """The smallest lambda at which the layer's extreme weights would move to the zero cluster.

    For an extreme weight w with nearest centroid c: d(w, 0) + lambda I_0 <= d(w, c) + lambda I_c
    holds from lambda = (d(w, 0) - d(w, c)) / (I_c - I_0); the larger of the two extremes is taken
    (each with its own step when the steps are per block).
    """
    best = 0.0
    flat = w.reshape(-1)
    for index in (int(flat.argmin()), int(flat.argmax())):
        value = float(flat[index])
        centroids = _centroids(grid, step, index, index + 1)[:, 0]
        c = int(torch.argmin((centroids - value) ** 2))
        gap = float(info[c] - info[zero])
        if c != zero and math.isfinite(gap) and gap > 0:
            best = max(best, (value**2 - (value - float(centroids[c])) ** 2) / gap)
    return best


def _relevance_factor(relevance: torch.Tensor, beta: float, rho: float) -> torch.Tensor:
    return rho * (relevance + 1e-12) ** beta


class EntropyCost:
    """ECQ's choice of level for each weight, its statistics fixed: argmin_c (w - c x step)^2 + lam x I_c over the
    levels qmin..qmax (I_c = -log2 P_c of the nearest-level clusters; a level nobody is nearest to is never chosen),
    the zero level's cost multiplied per weight by `factor` (ECQx's relevance guard) when given. Weights are seen as
    the 2-D (rows, columns) of the layer's weight; `steps` holds each one's step, `factor` each one's multiplier."""

    def __init__(self, w: torch.Tensor, step: float | torch.Tensor, qmin: int, qmax: int, lam: float) -> None:
        self.grid = torch.arange(qmin, qmax + 1, dtype=torch.float32)
        self.qmin, self.zero, self.lam = qmin, -qmin, lam
        info = -torch.log2(cluster_pmf(w, self.grid, step, self.zero)).to(torch.float32)
        self.empty = torch.isinf(info)
        self.info = torch.where(self.empty, torch.zeros_like(info), info)
        shape = (w.shape[0], -1) if w.dim() > 1 else (1, -1)
        self.steps = (step.reshape(shape) if isinstance(step, torch.Tensor) and step.dim() > 0
                      else torch.full(w.reshape(shape).shape, float(step))).to(torch.float32)
        self.factor: torch.Tensor | None = None

    def __call__(self, values: torch.Tensor, rows: slice, columns: slice) -> torch.Tensor:
        steps = self.steps[rows, columns]
        factor = None if self.factor is None else self.factor[rows, columns]
        out = torch.empty(values.shape, dtype=torch.int64)
        per_chunk = max(1, CHUNK // max(values.shape[1], 1))
        for start in range(0, values.shape[0], per_chunk):
            span = slice(start, start + per_chunk)
            cost = (values[None, span] - self.grid[:, None, None] * steps[None, span]) ** 2
            if self.lam > 0:
                cost = cost + self.lam * self.info[:, None, None]
            cost[self.empty] = torch.inf
            if factor is not None:
                cost[self.zero] = cost[self.zero] * factor[span]
            out[span] = torch.argmin(cost, dim=0) + self.qmin
        return out


def assign(w: torch.Tensor, step: float | torch.Tensor, qmin: int, qmax: int, lam: float = 0.0,
           relevance: torch.Tensor | None = None, rho: float = 2.0, p: float = 0.1
           ) -> tuple[torch.Tensor, dict, EntropyCost]:
    """Levels of `w` on the grid step x {qmin..qmax}: argmin_c d(w, w_c) + lam x I_c (I_c = -log2 P_c).

    `step` is one float, or a tensor of w's shape holding each weight's step (block-wise steps); the
    entropy term is over the levels either way, as the coder sees them.

    `lam` is the layer's absolute lambda (0 gives nearest-grid assignment). With `relevance`
    (per weight, normalised to [0, 1]) the zero cluster's cost is multiplied by rho x R^beta
    (ECQx): relevant weights pay more to become zero. beta starts where mean(R)^beta = 0.5 and is
    bisected so that the sparsity lies within p below ECQ's own (never above it). Returns int8
    levels, a record of the assignment (pmf, sparsity, beta) and the cost it assigned with, which
    compensated rounding assigns its columns with (edgewise.compress.quant.rounding).
    """
    w = w.detach().to(torch.float32)
    cost = EntropyCost(w, step, qmin, qmax, lam)
    flat = w.reshape(cost.steps.shape)
    everything = (slice(None), slice(None))
    index = cost(flat, *everything)
    sparsity = float((index == 0).float().mean())
    record = {"sparsity_ecq": sparsity, "beta": None}
    if relevance is not None:
        r = relevance.detach().reshape(cost.steps.shape).to(torch.float32).clamp(0.0, 1.0)
        mean = float(r.mean())
        beta = math.log(0.5) / math.log(mean) if 0.0 < mean < 1.0 else 1.0
        lo, hi = 1e-4, 1.0
        beta = min(max(beta, lo), hi)
        for _ in range(30):
            cost.factor, used = _relevance_factor(r, beta, rho), beta
            candidate = cost(flat, *everything)
            s = float((candidate == 0).float().mean())
            if sparsity - p <= s <= sparsity:
                break
            if s > sparsity:  # too many zeros: a smaller beta keeps the factor near rho
                hi = beta
            else:
                lo = beta
            if hi - lo < 1e-6:
                break
            beta = (lo + hi) / 2
        index = candidate
        record.update(beta=used, sparsity_ecqx=float((index == 0).float().mean()))
    return index.to(torch.int8).reshape(w.shape), record, cost
