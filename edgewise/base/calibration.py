"""Activation range calibration: the clipping threshold an a-bit activation grid covers, from reference activations.

Four calibrators: `max` (the largest magnitude seen), `percentile` (that percentile of the
magnitudes: a few outliers no longer set the step of everything else), `entropy` (TensorRT's: the
threshold whose quantized distribution loses the least information, the smallest KL divergence
from the reference histogram) and `mse` (the range whose rounding and clipping error together is
smallest, the search OpenVINO's and AIMET's range setting do). A symmetric grid takes one
threshold (`activation_range`); an asymmetric one, a zero point and the tensor's own low and high
ends (`activation_bounds`). numpy only, so the integer kernel and an exporter compute the same
scales.
"""

from __future__ import annotations

import numpy as np

from edgewise.board.errors import UserError

CALIBRATORS = ("max", "percentile", "entropy", "mse")
HISTOGRAM_BINS = 2048
SHRINKS = np.linspace(0.01, 1.0, 100)  # the fractions of the full range the mse search tries


def _smoothed(distribution: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """`distribution` with `eps` on each empty bin, renormalized: a bin the quantized histogram left empty costs a
    finite divergence, not an infinite one (ONNX Runtime's and TensorRT's calibrators smooth likewise)."""
    smoothed = distribution + eps * (distribution == 0)
    return smoothed / smoothed.sum()


def _entropy_threshold(magnitudes: np.ndarray, levels: int, bins: int = HISTOGRAM_BINS) -> float:
    """TensorRT's entropy calibration on |activations|: for each candidate threshold (a histogram edge from `levels`
    bins up), clip the histogram there (outliers into the last bin), merge it into `levels` quantization bins and
    expand it back over the non-empty bins; the threshold with the smallest KL(reference || quantized) wins."""
    top = float(magnitudes.max())
    hist, edges = np.histogram(magnitudes, bins=bins, range=(0.0, top))
    hist = hist.astype(np.float64)
    best, best_i = np.inf, bins
    for i in range(levels, bins + 1):
        reference = hist[:i].copy()
        reference[-1] += hist[i:].sum()
        nonzero = hist[:i] != 0
        # np.array_split's groups: the first i % levels hold one bin more
        sizes = np.full(levels, i // levels) + (np.arange(levels) < i % levels)
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        sums = np.add.reduceat(hist[:i], starts)
        used = np.add.reduceat(nonzero.astype(np.float64), starts)
        quantized = np.repeat(np.where(used > 0, sums / np.maximum(used, 1), 0.0), sizes) * nonzero
        if not quantized.any():  # every kept bin is empty: all the mass is in the outliers, nothing to compare
            continue
        p = reference / reference.sum()
        q = _smoothed(quantized / quantized.sum())
        mask = p > 0
        divergence = float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
        if divergence < best:
            best, best_i = divergence, i
    return float(edges[best_i])


def _mse_shrink(values: np.ndarray, low: float, high: float, steps: int) -> float:
    """The fraction of [low, high] whose grid of `steps` steps loses least: the expected squared error of the values
    (a histogram of them) when rounded inside the range (step^2 / 12 each) and clipped outside it."""
    hist, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(low, high))
    centers = (edges[:-1] + edges[1:]) / 2
    weights = hist / hist.sum()
    best, best_shrink = np.inf, 1.0
    for shrink in SHRINKS:
        lo, hi = shrink * low, shrink * high
        clipped = np.clip(centers, lo, hi)
        inside = float(weights[centers == clipped].sum())
        error = inside * ((hi - lo) / steps) ** 2 / 12 + float(weights @ (centers - clipped) ** 2)
        if error < best:
            best, best_shrink = error, float(shrink)
    return best_shrink


def _checked(values: np.ndarray, method: str, percentile: float) -> np.ndarray:
    if method not in CALIBRATORS:
        raise UserError(f"unknown activation calibrator {method!r}", f"use one of {', '.join(CALIBRATORS)}")
    if not 0.0 < percentile <= 100.0:
        raise UserError(f"percentile {percentile} is outside (0, 100]", "use e.g. 99.99")
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if flat.size == 0 or not np.isfinite(flat).all():
        raise UserError("the calibration activations are empty or not finite",
                        "calibrate on finite reference inputs (no NaN or inf)")
    return flat


def activation_range(values: np.ndarray, method: str = "max", bits: int = 8, signed: bool = True,
                     percentile: float = 99.99) -> float:
    """The clipping threshold for `values` (any shape; their magnitudes count) on a symmetric a-bit grid by
    `method`: max, percentile (of the magnitudes), entropy (TensorRT's KL calibration) or mse, with the grid's levels
    on one side of zero: 2^(bits-1) signed, 2^bits - 1 for non-negative activations. 1.0 for all-zero values, so a
    scale is always positive."""
    magnitudes = np.abs(_checked(values, method, percentile))
    top = float(magnitudes.max())
    if top == 0.0:
        return 1.0
    levels = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    if method == "max":
        return top
    if method == "percentile":
        return float(np.percentile(magnitudes, percentile)) or top
    if method == "mse":
        return top * _mse_shrink(magnitudes, 0.0, top, levels)
    return _entropy_threshold(magnitudes, levels + signed) or top


def activation_bounds(values: np.ndarray, method: str = "max", bits: int = 8, percentile: float = 99.99
                      ) -> tuple[float, float]:
    """The range (low <= 0 <= high) an asymmetric a-bit grid (2^bits - 1 steps and a zero point) covers for
    `values` by `method`: max (their extremes), percentile (of each side's magnitudes), entropy (TensorRT's
    threshold on the magnitudes, each end clipped to it) or mse. (0, 1) for all-zero values, so a scale is always
    positive."""
    flat = _checked(values, method, percentile)
    low, high = min(float(flat.min()), 0.0), max(float(flat.max()), 0.0)
    if low == high:
        return 0.0, 1.0
    if method == "percentile":
        high = float(np.percentile(flat[flat > 0], percentile)) if high > 0 else 0.0
        low = -float(np.percentile(-flat[flat < 0], percentile)) if low < 0 else 0.0
    elif method == "entropy":
        threshold = activation_range(flat, "entropy", bits, signed=low < 0)
        low, high = max(low, -threshold), min(high, threshold)
    elif method == "mse":
        shrink = _mse_shrink(flat, low, high, 2**bits - 1)
        low, high = low * shrink, high * shrink
    low, high = min(low, 0.0), max(high, 0.0)
    return (low, high) if high > low else (0.0, 1.0)
