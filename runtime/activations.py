"""Activation quantization for the integer kernel: scales, rounding and the fixed-point requantizer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgewise.board.errors import UserError


def quantize_input(x: np.ndarray, scale: float, bits: int, signed: bool) -> np.ndarray:
    """x / scale rounded half to even and clipped to the a-bit range (unsigned: 0..2^b-1), as int64; the division
    in float32, as ONNX's QuantizeLinear computes it, so the kernel and a W4A8 file quantize inputs alike."""
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return np.clip(np.rint(np.asarray(x, dtype=np.float32) / np.float32(scale)), lo, hi).astype(np.int64)


@dataclass(frozen=True)
class Requantizer:
    """Integer-only rescaling acc -> clip(round(acc x M)) with M ~ multiplier x 2^-shift (a 31-bit fixed point).

    Rounding is half away from zero on the fixed-point product (add 2^(shift-1), arithmetic shift
    right, with the sign handled symmetrically); the result is clipped to the activation range.
    `multiplier` and `shift` are one integer each, or one per output channel (broadcast over the
    last axis of the accumulators): a layer whose steps differ per channel rescales each its own way.
    """

    multiplier: int | np.ndarray
    shift: int | np.ndarray
    lo: int
    hi: int

    @classmethod
    def from_scale(cls, scale: float | np.ndarray, bits: int, signed: bool = False) -> Requantizer:
        """The fixed-point representation of the real factor `scale` (> 0; or one per channel, each below 2^31) for
        a-bit outputs."""
        scale = np.asarray(scale, dtype=np.float64)
        if not (scale > 0).all():
            raise UserError(f"requantization scale must be positive, got {scale.min()}", "calibrate the activations")
        mantissa, exponent = np.frexp(scale)  # scale = mantissa * 2^exponent, mantissa in [0.5, 1)
        multiplier = np.round(mantissa * (1 << 31)).astype(np.int64)
        shift = 31 - exponent.astype(np.int64)
        carry = multiplier == 1 << 31
        multiplier, shift = np.where(carry, multiplier // 2, multiplier), np.where(carry, shift - 1, shift)
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        if scale.ndim == 0:
            return cls(int(multiplier), int(shift), lo, hi)
        if (shift <= 0).any():
            raise UserError(f"a per-channel requantization scale of {scale.max():.3g} is too large for the kernel",
                            "calibrate the activations (scales per channel must stay below 2^31)")
        return cls(multiplier, shift, lo, hi)

    def __call__(self, acc: np.ndarray, nonnegative: bool = False) -> np.ndarray:
        product = acc.astype(np.int64) * self.multiplier  # |acc| < 2^31 and multiplier < 2^31: fits int64
        if np.ndim(self.shift) == 0 and self.shift <= 0:
            rounded = product << (-self.shift)
        elif nonnegative:  # after ReLU: the same rounding without the sign bookkeeping
            rounded = (product + (np.int64(1) << (self.shift - 1))) >> self.shift
            return np.minimum(rounded, self.hi) if self.lo <= 0 else np.clip(rounded, self.lo, self.hi)
        else:
            half = np.int64(1) << (self.shift - 1)
            magnitude = (np.abs(product) + half) >> self.shift
            rounded = np.sign(product) * magnitude
        return np.clip(rounded, self.lo, self.hi)
