"""The second moments H = X^T X of weight layers' inputs on calibration samples, which compensated rounding reads.

X holds what a layer's weight multiplies: a linear layer's input rows, a convolution's input
patches (unfolded as the weight is flattened: channel, then kernel position), per group for a
grouped or depthwise convolution. Layers are taken in model order, a few at a time within a
memory budget for their moments, and each set is quantized before the next set's moments are
taken, so later layers see the rounding of earlier ones (GPTQ's sequential order) without one
calibration pass per layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgewise.base.device import device_of
from edgewise.compress.layers import watch_weight_inputs

ROWS = 1 << 16  # input rows a layer's moments take from one calibration batch
PATCHES = 1 << 24  # values of a convolution's unfolded input held at once
MOMENT_MEMORY = 256 << 20  # bytes of moments held at once (float32)
SETS = 8  # at most this many calibration passes over the model


def observed(module: nn.Module) -> bool:
    """Whether the inputs of `module` are observed: linear layers and (non-transposed) convolutions."""
    return isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))


def moment_shape(module: nn.Module) -> tuple[int, ...]:
    """(inputs, inputs), or (groups, inputs, inputs) for a grouped convolution, of `module`'s moments."""
    per_output = module.weight[0].numel()
    groups = getattr(module, "groups", 1)
    return (groups, per_output, per_output) if groups > 1 else (per_output, per_output)


def _rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input as rows of what its weight multiplies: (rows, inputs), or (groups, rows, inputs). A
    convolution's windows (1-D, 2-D or 3-D) are cut out per spatial axis, each row ordered channel, then kernel
    position, as the weight is flattened."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    padding = tuple(module._reversed_padding_repeated_twice)
    if any(padding):
        x = F.pad(x, padding, mode="constant" if module.padding_mode == "zeros" else module.padding_mode)
    spatial = x.dim() - 2
    for axis, (size, stride, dilation) in enumerate(zip(module.kernel_size, module.stride, module.dilation,
                                                        strict=True)):
        x = x.unfold(2 + axis, (size - 1) * dilation + 1, stride)[..., ::dilation]  # the window becomes the last axis
    # (N, C, outputs..., kernel...) -> (N, outputs..., C, kernel...)
    x = x.permute(0, *range(2, 2 + spatial), 1, *range(2 + spatial, 2 + 2 * spatial))
    rows = x.reshape(-1, module.weight[0].numel() * module.groups)
    if module.groups > 1:
        return rows.reshape(rows.shape[0], module.groups, -1).transpose(0, 1)
    return rows


def _accumulate(total: torch.Tensor, module: nn.Module, x: torch.Tensor) -> None:
    """Add one input of `module` to its moments: at most ROWS rows of it (every s-th, evenly over the batch and the
    positions: a convolution over large maps repeats itself), unfolded PATCHES values at a time."""
    x = x.detach()
    if isinstance(module, nn.Linear):
        x, positions = x.reshape(-1, x.shape[-1]), 1
    else:
        x = x.unsqueeze(0) if x.dim() == module.weight.dim() - 1 else x  # an unbatched input
        positions = x[0].numel() // x.shape[1]  # the windows of one sample, at most (stride 1)
    every = max(1, -(-len(x) * positions // ROWS))
    length = module.weight[0].numel() * getattr(module, "groups", 1)
    chunk = max(1, PATCHES // max(positions * length, 1))
    for start in range(0, len(x), chunk):
        rows = _rows(module, x[start:start + chunk])[..., ::every, :].to(torch.float32)
        total += (rows.transpose(-1, -2) @ rows).cpu()


def _sets(layers: dict[str, nn.Module]) -> Iterator[list[str]]:
    """The observed layers in model order, in sets within MOMENT_MEMORY and at most SETS passes."""
    names = [n for n, m in layers.items() if observed(m)]
    most = max(1, -(-len(names) // SETS))
    current: list[str] = []
    held = 0
    for name in names:
        size = 4 * torch.Size(moment_shape(layers[name])).numel()
        if current and (held + size > MOMENT_MEMORY or len(current) >= most):
            yield current
            current, held = [], 0
        current.append(name)
        held += size
    if current:
        yield current


def with_input_moments(model: nn.Module, layers: dict[str, Any], x: torch.Tensor, batch_size: int,
                       quantize: Callable[[dict[str, torch.Tensor]], None]) -> None:
    """Call `quantize` with the moments of every observed layer of `layers` (by name; a set at a time, see the
    module) taken by running `model` on the calibration inputs `x`, `batch_size` at a time; `quantize` writes the
    set's quantized weights into `model` before the next set is observed."""
    device = device_of(model)
    for names in _sets(layers):
        moments = {n: torch.zeros(moment_shape(layers[n])) for n in names}

        removers = [watch_weight_inputs(layers[n], lambda x, _, m=layers[n], total=moments[n]: _accumulate(total, m, x))
                    for n in names]
        try:
            with torch.no_grad():
                for start in range(0, len(x), batch_size):
                    model(x[start:start + batch_size].to(device))
        finally:
            for remove in removers:
                remove()
        quantize(moments)
