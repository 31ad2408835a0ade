"""Entropy-constrained assignment (ECQ) and its relevance-corrected zero cluster (ECQx), on a fixed grid."""

from __future__ import annotations

import math

import torch

CHUNK = 1 << 20  # weights per block of the (levels x weights) cost matrix


def cluster_pmf(w: torch.Tensor, centroids: torch.Tensor, zero: int, floor: float = 0.5) -> torch.Tensor:
    """Fractions of weights nearest to each centroid, with the zero cluster floored at `floor` (others rescaled)."""
    counts = torch.zeros(len(centroids), dtype=torch.float64)
    flat = w.reshape(-1)
    for start in range(0, flat.numel(), CHUNK):
        chunk = flat[start:start + CHUNK]
        nearest = torch.argmin((chunk[None, :] - centroids[:, None]) ** 2, dim=0)
        counts += torch.bincount(nearest, minlength=len(centroids)).to(torch.float64)
    pmf = counts / max(flat.numel(), 1)
    if pmf[zero] < floor:
        others = pmf.sum() - pmf[zero]
        if others > 0:
            pmf = pmf * (1 - floor) / others
        pmf[zero] = floor
    return pmf


def lambda_max(w: torch.Tensor, centroids: torch.Tensor, info: torch.Tensor, zero: int) -> float:
    """The smallest lambda at which the layer's extreme weights would move to the zero cluster.

    For an extreme weight w with nearest centroid c: d(w, 0) + lambda I_0 <= d(w, c) + lambda I_c
    holds from lambda = (d(w, 0) - d(w, c)) / (I_c - I_0); the larger of the two extremes is taken.
    """
    best = 0.0
    for value in (float(w.min()), float(w.max())):
        c = int(torch.argmin((centroids - value) ** 2))
        gap = float(info[c] - info[zero])
        if c != zero and math.isfinite(gap) and gap > 0:
            best = max(best, (value**2 - (value - float(centroids[c])) ** 2) / gap)
    return best


def _relevance_factor(relevance: torch.Tensor, beta: float, rho: float) -> torch.Tensor:
    return rho * (relevance + 1e-12) ** beta


def assign(w: torch.Tensor, step: float, qmin: int, qmax: int, lam: float = 0.0,
           relevance: torch.Tensor | None = None, rho: float = 2.0, p: float = 0.1) -> tuple[torch.Tensor, dict]:
    """Levels of `w` on the grid step x {qmin..qmax}: argmin_c d(w, w_c) + lam x I_c (I_c = -log2 P_c).

    `lam` is the layer's absolute lambda (0 gives nearest-grid assignment). With `relevance`
    (per weight, normalised to [0, 1]) the zero cluster's cost is multiplied by rho x R^beta
    (ECQx): relevant weights pay more to become zero. beta starts where mean(R)^beta = 0.5 and is
    bisected so that the sparsity lies within p below ECQ's own (never above it). Returns int8
    levels and a record of the assignment (pmf, sparsity, beta).
    """
    w = w.detach().to(torch.float32)
    centroids = torch.arange(qmin, qmax + 1, dtype=torch.float32) * step
    zero = -qmin
    info = -torch.log2(cluster_pmf(w, centroids, zero)).to(torch.float32)
    empty = torch.isinf(info)  # clusters nobody is nearest to can never be chosen
    finite_info = torch.where(empty, torch.zeros_like(info), info)
    flat = w.reshape(-1)

    def levels_for(factor: torch.Tensor | None) -> torch.Tensor:
        out = torch.empty(flat.numel(), dtype=torch.int64)
        for start in range(0, flat.numel(), CHUNK):
            chunk = flat[start:start + CHUNK]
            cost = (chunk[None, :] - centroids[:, None]) ** 2
            if lam > 0:
                cost = cost + lam * finite_info[:, None]
            cost[empty] = torch.inf
            if factor is not None:
                cost[zero] = cost[zero] * factor[start:start + CHUNK]
            out[start:start + CHUNK] = torch.argmin(cost, dim=0)
        return out

    index = levels_for(None)
    sparsity = float((index == zero).float().mean())
    record = {"sparsity_ecq": sparsity, "beta": None}
    if relevance is not None:
        r = relevance.detach().reshape(-1).to(torch.float32).clamp(0.0, 1.0)
        mean = float(r.mean())
        beta = math.log(0.5) / math.log(mean) if 0.0 < mean < 1.0 else 1.0
        lo, hi = 1e-4, 1.0
        beta = min(max(beta, lo), hi)
        for _ in range(30):
            candidate, used = levels_for(_relevance_factor(r, beta, rho)), beta
            s = float((candidate == zero).float().mean())
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
        record.update(beta=used, sparsity_ecqx=float((index == zero).float().mean()))
    levels = (index + qmin).to(torch.int8).reshape(w.shape)
    return levels, record
