"""4-bit values packed two per byte, the first in the low nibble: the order of ONNX INT4 tensors and of our layouts."""

from __future__ import annotations

import numpy as np


def pack_nibbles(values: np.ndarray) -> bytes:
    """Pack 4-bit codes (already offset into 0..15) two per byte, the first in the low nibble; odd counts pad a 0."""
    flat = np.asarray(values).reshape(-1).astype(np.uint8) & 0x0F
    if flat.size % 2:
        flat = np.append(flat, np.uint8(0))
    return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8).tobytes()


def unpack_nibbles(data: bytes, count: int, signed: bool = False) -> np.ndarray:
    """Inverse of `pack_nibbles`: the first `count` codes as int16, sign-extended (two's complement) when `signed`."""
    raw = np.frombuffer(data, dtype=np.uint8)
    values = np.empty(raw.size * 2, dtype=np.int16)
    values[0::2], values[1::2] = raw & 0x0F, raw >> 4
    values = values[:count]
    return np.where(values > 7, values - 16, values) if signed else values
