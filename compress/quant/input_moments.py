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

ROWS = 1 << 16  # input rows per X^T X product: bounds the memory of a convolution's unfolded patches
MOMENT_MEMORY = 256 << 20  # bytes of moments held at once (float32)
SETS = 8  # at most this many calibration passes over the model


def observed(module: nn.Module) -> bool:
    """Whether the inputs of `module` are observed: linear layers and (non-transposed) 1-D and 2-D convolutions."""
    return isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d))


def moment_shape(module: nn.Module) -> tuple[int, ...]:
    """(inputs, inputs), or (groups, inputs, inputs) for a grouped convolution, of `module`'s moments."""
    per_output = module.weight[0].numel()
    groups = getattr(module, "groups", 1)
    return (groups, per_output, per_output) if groups > 1 else (per_output, per_output)


def _rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input as rows of what its weight multiplies: (rows, inputs), or (groups, rows, inputs)."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if x.dim() == module.weight.dim() - 1:  # an unbatched input
        x = x.unsqueeze(0)
    if isinstance(module, nn.Conv1d):
        x = x.unsqueeze(2)
        kernel, dilation, stride = (1, *module.kernel_size), (1, *module.dilation), (1, *module.stride)
        padding = (*module._reversed_padding_repeated_twice, 0, 0)  # F.pad starts at the last axis
    else:
        kernel, dilation, stride = module.kernel_size, module.dilation, module.stride
        padding = tuple(module._reversed_padding_repeated_twice)
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    if any(padding):
        x = F.pad(x, padding, mode=mode)
    patches = F.unfold(x, kernel, dilation=dilation, stride=stride)  # (N, C x kernel, L)
    rows = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    if module.groups > 1:
        return rows.reshape(rows.shape[0], module.groups, -1).transpose(0, 1)
    return rows


def _accumulate(total: torch.Tensor, rows: torch.Tensor) -> None:
    for start in range(0, rows.shape[-2], ROWS):
        chunk = rows[..., start:start + ROWS, :].to(torch.float32)
        total += (chunk.transpose(-1, -2) @ chunk).cpu()


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

        removers = [watch_weight_inputs(layers[n], lambda x, _, m=layers[n], total=moments[n]:
                                        _accumulate(total, _rows(m, x.detach()))) for n in names]
        try:
            with torch.no_grad():
                for start in range(0, len(x), batch_size):
                    model(x[start:start + batch_size].to(device))
        finally:
            for remove in removers:
                remove()
        quantize(moments)
