"""Symmetric round-to-nearest onto a b-bit grid: what the uniform quantizer and rounded float weights share."""

from __future__ import annotations

import numpy as np

from edgewise.board.errors import UserError


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


def check_block(block: int | None) -> None:
    """A user error unless `block` is None or one of BLOCK_SIZES."""
    if block is not None and block not in BLOCK_SIZES:
        raise UserError(f"block size {block} is not supported",
                        f"use one of {', '.join(map(str, BLOCK_SIZES))} (or none: per layer or per channel)")


def input_axis_of(axis: int) -> int:
    """The axis blocks run along for a weight whose output channels lie on `axis`: the other of its first two."""
    return 0 if axis == 1 else 1


def _per_block(values: np.ndarray, input_axis: int, block: int, reduce) -> np.ndarray:
    """`reduce` over every run of `block` values along `input_axis`, zero-padded at the end: the
    shape of `values` with that axis shrunk to the number of blocks."""
    v = np.moveaxis(np.asarray(values, dtype=np.float32), input_axis, -1)
    k = v.shape[-1]
    blocks = -(-k // block)
    padded = np.zeros((*v.shape[:-1], blocks * block), dtype=np.float32)
    padded[..., :k] = v
    return np.moveaxis(reduce(padded.reshape(*v.shape[:-1], blocks, block), axis=-1), -1, input_axis)


def _largest_magnitude(values: np.ndarray, axis: int) -> np.ndarray:
    return np.take_along_axis(values, np.abs(values).argmax(axis=axis)[..., None], axis=axis).squeeze(axis)


def block_extremes(weight: np.ndarray, input_axis: int, block: int) -> np.ndarray:
    """The weight of largest magnitude, with its sign, in every run of `block` weights along `input_axis` (the last
    run may be shorter): the weight's shape with that axis shrunk to the number of blocks."""
    return _per_block(weight, input_axis, block, _largest_magnitude)


def expand_blocks(blocked: np.ndarray, input_axis: int, block: int, size: int) -> np.ndarray:
    """Per-block values repeated over their blocks' weights, cut to `size` along `input_axis`."""
    return np.take(np.repeat(blocked, block, axis=input_axis), np.arange(size), axis=input_axis)


def block_scales(steps: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed per-block `steps` as a float32 base per output channel (along `axis`) times signed integer
    multipliers, 1 to 255 in magnitude, rounded away from zero so that no block's range shrinks. Returns (base,
    multipliers as int16)."""
    magnitude = np.abs(steps)
    others = tuple(d for d in range(steps.ndim) if d != axis)
    top = magnitude.max(axis=others)
    base = np.where(top > 0, top / np.float32(MULTIPLIER_MAX), np.float32(1.0)).astype(np.float32)
    shape = [1] * steps.ndim
    shape[axis] = -1
    multipliers = np.clip(np.ceil(magnitude / base.reshape(shape)), 1, MULTIPLIER_MAX)
    return base, (multipliers * np.where(steps < 0, -1, 1)).astype(np.int16)


def multiplied(base: np.ndarray, multipliers: np.ndarray, axis: int) -> np.ndarray:
    """Every block's float32 step: its output channel's `base` (along `axis`) times its integer multiplier."""
    shape = [1] * multipliers.ndim
    shape[axis] = -1
    return (base.reshape(shape) * multipliers.astype(np.float32)).astype(np.float32)


def blocked_steps(weight: np.ndarray, bits: int, axis: int, block: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """The block-wise grid of `weight` on [-2^(b-1), 2^(b-1) - 1], a step per block of `block` weights along the
    input axis, stored as base x signed multiplier (`block_scales`).

    A block's step puts its weight of largest magnitude on the extra negative level (-8 at 4 bits:
    the step is negative when that weight is positive), so all 16 levels serve, as in ONNX Runtime's
    symmetric blocks. (Shrinking the step below that, to the least squared error per block, lowered
    the output's RMS error by 4% on heavy-tailed layers but raised its maximum error by 10-30% and
    did not help top-1 agreement: the extreme weights are the ones that matter.) Returns the base
    per output channel (float32), the multipliers (int16, blocked shape), every weight's step
    (float32, the weight's shape), qmin and qmax.
    """
    check_block(block)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    w = np.asarray(weight, dtype=np.float32)
    input_axis = input_axis_of(axis)
    base, multipliers = block_scales(block_extremes(w, input_axis, block) / np.float32(qmin), axis)
    steps = expand_blocks(multiplied(base, multipliers, axis), input_axis, block, w.shape[input_axis])
    return base, multipliers, steps, qmin, qmax


def blocked_symmetric_levels(weight: np.ndarray, bits: int, axis: int, block: int
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Round-to-nearest onto the block-wise grid of `blocked_steps`. Returns levels (int8), the base per output
    channel (float32), the multipliers (int16, blocked shape), qmin and qmax."""
    base, multipliers, steps, qmin, qmax = blocked_steps(weight, bits, axis, block)
    levels = np.clip(np.rint(np.asarray(weight, dtype=np.float32) / steps), qmin, qmax)
    return levels.astype(np.int8), base, multipliers, qmin, qmax
