"""Activation range calibration: the clipping threshold an a-bit activation grid covers, from reference activations.

Three calibrators, the choices ONNX Runtime's and TensorRT's calibrators offer: `max` (the largest
magnitude seen), `percentile` (that percentile of the magnitudes: a few outliers no longer set the
step of everything else) and `entropy` (TensorRT's: the threshold whose quantized distribution
loses the least information, the smallest KL divergence from the reference histogram). numpy only,
so the integer kernel and an exporter compute the same scales.
"""

from __future__ import annotations

import numpy as np

from edgewise.base.errors import UserError

CALIBRATORS = ("max", "percentile", "entropy")
HISTOGRAM_BINS = 2048


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
        p = reference / reference.sum()
        q = _smoothed(quantized / quantized.sum())
        mask = p > 0
        divergence = float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
        if divergence < best:
            best, best_i = divergence, i
    return float(edges[best_i])


def activation_range(values: np.ndarray, method: str = "max", bits: int = 8, signed: bool = True,
                     percentile: float = 99.99) -> float:
    """The clipping threshold for `values` (any shape; their magnitudes count) on an a-bit grid by `method`: max,
    percentile (of the magnitudes) or entropy (TensorRT's KL calibration, with the grid's levels on one side of
    zero: 2^(bits-1) signed, 2^bits - 1 for non-negative activations). 1.0 for all-zero values, so a scale is always
    positive."""
    if method not in CALIBRATORS:
        raise UserError(f"unknown activation calibrator {method!r}", f"use one of {', '.join(CALIBRATORS)}")
    if not 0.0 < percentile <= 100.0:
        raise UserError(f"percentile {percentile} is outside (0, 100]", "use e.g. 99.99")
    magnitudes = np.abs(np.asarray(values, dtype=np.float64)).reshape(-1)
    if magnitudes.size == 0 or not np.isfinite(magnitudes).all():
        raise UserError("the calibration activations are empty or not finite",
                        "calibrate on finite reference inputs (no NaN or inf)")
    top = float(magnitudes.max())
    if top == 0.0:
        return 1.0
    if method == "max":
        return top
    if method == "percentile":
        return float(np.percentile(magnitudes, percentile)) or top
    return _entropy_threshold(magnitudes, 2 ** (bits - 1) if signed else 2**bits - 1) or top
