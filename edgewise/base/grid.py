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


BLOCK_SIZES = (16, 32, 64, 128, 256)  # powers of two from 16: what ONNX Runtime's MatMulNBits takes
MULTIPLIER_MAX = 255  # block multipliers are 8-bit integers


def input_axis_of(axis: int) -> int:
    """The axis blocks run along for a weight whose output channels lie on `axis`: the other of its first two."""
    return 0 if axis == 1 else 1


def block_peaks(weight: np.ndarray, input_axis: int, block: int) -> np.ndarray:
    """max |w| of every run of `block` weights along `input_axis` (the last run may be shorter): the weight's shape
    with that axis shrunk to the number of blocks."""
    w = np.moveaxis(np.abs(np.asarray(weight, dtype=np.float32)), input_axis, -1)
    k = w.shape[-1]
    blocks = -(-k // block)
    padded = np.zeros((*w.shape[:-1], blocks * block), dtype=np.float32)
    padded[..., :k] = w
    return np.moveaxis(padded.reshape(*w.shape[:-1], blocks, block).max(-1), -1, input_axis)


def expand_blocks(blocked: np.ndarray, input_axis: int, block: int, size: int) -> np.ndarray:
    """Per-block values repeated over their blocks' weights, cut to `size` along `input_axis`."""
    return np.take(np.repeat(blocked, block, axis=input_axis), np.arange(size), axis=input_axis)


def block_scales(steps: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-block `steps` as a float32 base per output channel (along `axis`) times integer multipliers in
    1..255, rounded up so that no block's range shrinks. Returns (base, multipliers as uint8)."""
    others = tuple(d for d in range(steps.ndim) if d != axis)
    top = steps.max(axis=others)
    base = np.where(top > 0, top / np.float32(MULTIPLIER_MAX), np.float32(1.0)).astype(np.float32)
    shape = [1] * steps.ndim
    shape[axis] = -1
    multipliers = np.clip(np.ceil(steps / base.reshape(shape)), 1, MULTIPLIER_MAX).astype(np.uint8)
    return base, multipliers


def blocked_symmetric_levels(weight: np.ndarray, bits: int, axis: int, block: int
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """`symmetric_levels` with a step per block of `block` weights along the input axis: step = max|w| of the
    block / (2^(b-1) - 1), stored as base x multiplier (`block_scales`). Returns levels (int8), the base per output
    channel (float32), the multipliers (uint8, blocked shape), qmin and qmax."""
    if block not in BLOCK_SIZES:
        raise ValueError(f"block size {block} is not one of {BLOCK_SIZES}")
    qmax = 2 ** (bits - 1) - 1
    w = np.asarray(weight, dtype=np.float32)
    input_axis = input_axis_of(axis)
    base, multipliers = block_scales(block_peaks(w, input_axis, block) / np.float32(qmax), axis)
    shape = [1] * w.ndim
    shape[axis] = -1
    steps = (base.reshape(shape) * multipliers.astype(np.float32)).astype(np.float32)
    scale = expand_blocks(steps, input_axis, block, w.shape[input_axis])
    levels = np.clip(np.rint(w / scale), -qmax, qmax).astype(np.int8)
    return levels, base, multipliers, -qmax, qmax
