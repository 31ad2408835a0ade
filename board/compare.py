"""How an output is compared with the one it should be: the largest difference relative to the largest magnitude."""

from __future__ import annotations

import numpy as np


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference of `a` from `b`, relative to `b`'s largest magnitude (a zero `b` counts as 1e-12):
    how every export, bundle, board probe and converted graph is compared with what it should compute."""
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-12))
