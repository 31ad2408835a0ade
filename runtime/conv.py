"""Convolutions and max pooling as the integer kernel runs them (numpy only).

A convolution is the matrix product it is: im2col lays out one input vector per output pixel (the
channels x kernel window under it, channel-major, as the weight (outputs, channels, kh, kw)
flattens), and the layer's 4-bit weight matrix multiplies every one of them, exactly like a
fully-connected layer. Max pooling runs on the integer activations: requantization is monotone, so
pooling after it picks the same values as pooling before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class Window:
    """A 2-D sliding window: kernel size, strides, pads (top, left, bottom, right) and dilations, as ONNX names
    them."""

    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Window:
        """The window from its JSON form (lists, as record metadata holds it)."""
        return cls(tuple(values["kernel"]), tuple(values.get("strides", (1, 1))),
                   tuple(values.get("pads", (0, 0, 0, 0))), tuple(values.get("dilations", (1, 1))))

    def to_json(self) -> dict[str, list[int]]:
        """JSON-able form, for record metadata."""
        return {"kernel": list(self.kernel), "strides": list(self.strides), "pads": list(self.pads),
                "dilations": list(self.dilations)}

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the output of a `height` x `width` input."""
        out = []
        for size, k, s, before, after, d in zip((height, width), self.kernel, self.strides, self.pads[:2],
                                               self.pads[2:], self.dilations, strict=True):
            out.append((size + before + after - d * (k - 1) - 1) // s + 1)
        return out[0], out[1]

    def _windows(self, x: np.ndarray, fill: float | int) -> np.ndarray:
        """(N, C, Ho, Wo, kh, kw): every window of `x` (N, C, H, W), padded with `fill`."""
        top, left, bottom, right = self.pads
        padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
        (kh, kw), (dh, dw), (sh, sw) = self.kernel, self.dilations, self.strides
        span = sliding_window_view(padded, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
        return span[:, :, ::sh, ::sw, ::dh, ::dw]


def im2col(x: np.ndarray, window: Window) -> tuple[np.ndarray, tuple[int, int]]:
    """The input vectors of a convolution: (N x Ho x Wo, C x kh x kw) rows, pixel-major, padded with zeros; and
    (Ho, Wo)."""
    windows = window._windows(x, 0)
    n, c, ho, wo, kh, kw = windows.shape
    return np.ascontiguousarray(windows.transpose(0, 2, 3, 1, 4, 5)).reshape(n * ho * wo, c * kh * kw), (ho, wo)


def max_pool(x: np.ndarray, window: Window) -> np.ndarray:
    """Max pooling of (N, C, H, W); pads never win (they hold the smallest value of x's type)."""
    fill = np.iinfo(x.dtype).min if np.issubdtype(x.dtype, np.integer) else -np.inf
    return window._windows(x, fill).max(axis=(4, 5))


def rows_to_maps(rows: np.ndarray, batch: int, size: tuple[int, int]) -> np.ndarray:
    """A convolution's output rows (N x Ho x Wo, outputs) as maps (N, outputs, Ho, Wo)."""
    return rows.reshape(batch, size[0], size[1], -1).transpose(0, 3, 1, 2)
