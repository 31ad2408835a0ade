"""The ECQ grid of a layer: its step size and integer level range, fixed once before assignment."""

from __future__ import annotations

import torch

PERCENTILE = 99.9


def _side_votes(w: torch.Tensor) -> int:
    """Positive minus negative votes over five statistics: which side of the grid gets the extra level."""
    pos, neg = w[w > 0], -w[w < 0]

    def stat(t: torch.Tensor, fn) -> float:
        return float(fn(t)) if t.numel() > 1 else (float(t.sum()) if t.numel() else 0.0)

    pairs = [(stat(pos, torch.max), stat(neg, torch.max)), (stat(pos, torch.mean), stat(neg, torch.mean)),
             (float(pos.numel()), float(neg.numel())), (float(pos.sum()), float(neg.sum())),
             (stat(pos, torch.std), stat(neg, torch.std))]
    return sum(1 if p > n else -1 for p, n in pairs)


def ecq_grid(w: torch.Tensor, bits: int) -> tuple[float, int, int]:
    """Step and level range of the ECQ grid for weight `w` (fixed after initialisation).

    Step = P99.9(|w|) / (2^(b-1) - 1) for a signed layer, / (2^b - 1) for one without negative
    weights (levels 0..2^b-1). A signed grid has 2^b levels including 0: {-2^(b-1) .. 2^(b-1)-1}
    or, when the positive weights dominate, {-2^(b-1)+1 .. 2^(b-1)} (8-bit grids stay within int8).
    """
    flat = w.detach().reshape(-1).to('cpu', torch.float64)
    signed = bool((flat < 0).any())
    denom = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    magnitude = flat.abs()
    step = float(torch.quantile(magnitude, PERCENTILE / 100)) / denom if magnitude.numel() else 0.0
    if step == 0.0:
        step = float(magnitude.max()) / denom if magnitude.numel() else 0.0
    if step == 0.0:
        step = 1.0  # an all-zero layer: any step represents it exactly
    if not signed:
        return step, 0, 2**bits - 1
    half = 2 ** (bits - 1)
    if bits < 8 and _side_votes(flat) > 0:
        return step, -half + 1, half
    return step, -half, half - 1


def ecq_channel_steps(w: torch.Tensor, bits: int, axis: int, signed: bool) -> torch.Tensor:
    """One ECQ step per output channel (`axis`): each channel's P99.9(|w|) over the same denominator as the layer's
    grid (`signed`: 2^(b-1) - 1, else 2^b - 1), so that every channel spans the layer's levels; a channel of zeros
    gets step 1."""
    rows = w.detach().to("cpu", torch.float64).movedim(axis, 0).reshape(w.shape[axis], -1).abs()
    denom = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    steps = torch.quantile(rows, PERCENTILE / 100, dim=1) / denom
    steps = torch.where(steps > 0, steps, rows.amax(dim=1) / denom)
    return torch.where(steps > 0, steps, torch.ones_like(steps))
