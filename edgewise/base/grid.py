"""Symmetric round-to-nearest onto a b-bit grid: what the uniform quantizer and rounded float weights share."""

from __future__ import annotations

import numpy as np


def symmetric_levels(weight: np.ndarray, bits: int, axis: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Levels in +-(2^(b-1) - 1) with step max|w| / (2^(b-1) - 1); error at most step / 2.

    Per layer (`axis` None: one step) or per slice along `axis` (the output channels). The
    arithmetic is float32 throughout, as a float32 model computes. Returns levels (int8), the
    step (float32, scalar or per channel), qmin and qmax.
    """
    qmax = 2 ** (bits - 1) - 1
    w = np.asarray(weight, dtype=np.float32)
    if axis is None:
        peak = np.abs(w).max() if w.size else np.float32(0)
        step = np.float32(peak / np.float32(qmax)) if peak > 0 else np.float32(1.0)
        scale = step
    else:
        others = tuple(d for d in range(w.ndim) if d != axis)
        peak = np.abs(w).max(axis=others) if others else np.abs(w)
        step = np.where(peak > 0, peak / np.float32(qmax), np.float32(1.0)).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        scale = step.reshape(shape)
    levels = np.clip(np.rint(w / scale), -qmax, qmax).astype(np.int8)
    return levels, np.asarray(step, dtype=np.float32), -qmax, qmax
