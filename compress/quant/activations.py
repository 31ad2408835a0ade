"""Fake-quantized activations for quantization-aware training: each quantized layer's input rounded to an a-bit grid
whose range follows the training batches, the gradient passed straight through.

Trained so, a network meets during training the rounding its W4A8 file (edgewise.export.w4a8)
and the integer kernel apply to activations. The grid is the kernel's: unsigned (0 .. 2^a - 1)
for a non-negative input, symmetric (-(2^(a-1)) .. 2^(a-1) - 1) otherwise, its range the running
maximum magnitude of the layer's inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from edgewise.board.errors import UserError


def fake_quantize(x: torch.Tensor, top: torch.Tensor | float, bits: int) -> torch.Tensor:
    """`x` rounded onto the a-bit grid covering [0, top] (non-negative x) or [-top, top], clipped; the gradient is
    the identity (straight through)."""
    signed = bool((x < 0).any())
    levels = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    scale = torch.as_tensor(top, dtype=x.dtype, device=x.device).clamp(min=1e-12) / levels
    q = torch.clamp(torch.round(x / scale), -levels - 1 if signed else 0, levels) * scale
    return x + (q - x).detach()


@contextmanager
def fake_quantized_activations(layers: dict[str, nn.Module], bits: int = 8, momentum: float = 0.9
                               ) -> Iterator[dict[str, float]]:
    """Within the block, every layer of `layers` sees its input fake-quantized to `bits`; the range of each is the
    running maximum of its inputs' magnitudes (updated in training mode, momentum `momentum`), yielded by name."""
    if not 2 <= bits <= 16:
        raise UserError(f"activation bit width {bits} is outside 2..16", "give e.g. 8 (W4A8)")
    ranges: dict[str, float] = {}

    def quantizer(name: str):
        def hook(module: nn.Module, args: tuple) -> tuple:
            x = args[0]
            top = float(x.detach().abs().max())
            if module.training or name not in ranges:
                ranges[name] = top if name not in ranges else momentum * ranges[name] + (1 - momentum) * top
            return (fake_quantize(x, ranges[name], bits), *args[1:])
        return hook

    # a recurrent matrix is not a module: ONNX Runtime's W4A8 runs LSTM and GRU on float activations, as here
    hooks = [module.register_forward_pre_hook(quantizer(name)) for name, module in layers.items()
             if isinstance(module, nn.Module)]
    try:
        yield ranges
    finally:
        for h in hooks:
            h.remove()
