"""The uniform quantizer: symmetric round-to-nearest per layer, per output channel or per block, no data, no
training."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from edgewise.base.grid import blocked_symmetric_levels, check_block, symmetric_levels
from edgewise.base.records import QuantizedLayer
from edgewise.compress.layers import output_axis
from edgewise.compress.quant.base import Quantizer
from edgewise.compress.quant.model import QuantizedModel, layer_record
from edgewise.compress.quant.rounding import check_rounding, rounded, rounding_named
from edgewise.compress.reference import ReferenceSamples


class UniformQuantizer(Quantizer):
    """step = max|w| / (2^(b-1) - 1), levels rounded to nearest: the baseline every other quantizer is held to.

    The max is taken per layer, per output channel (`per_channel`), or per `block` weights along the
    input axis (16 to 256; the block's step is a per-channel base times an 8-bit integer, see
    edgewise.base.records): on heavy-tailed weights a few large values no longer set the step of
    every other weight of their row.
    """

    name = "uniform"

    def __init__(self, per_channel: bool = False, block: int | None = None, rounding: str = "auto") -> None:
        check_block(block)
        check_rounding(rounding)
        self.per_channel = per_channel
        self.block = block
        self.rounding = rounding

    def quantize(self, model: nn.Module, layers: dict[str, nn.Module], bits: int, ref: ReferenceSamples | None,
                 train: Callable[..., QuantizedModel] | None) -> QuantizedModel:
        """Round each layer's weight onto its symmetric grid (compensated rounding on `ref`'s inputs unless the
        rounding setting says nearest) and write the grid values back."""
        records = {}
        for name, module in layers.items():
            weight = module.weight.detach().cpu().numpy()
            if self.block is not None:
                levels, base, multipliers, qmin, qmax = blocked_symmetric_levels(weight, bits, output_axis(module),
                                                                                 self.block)
                records[name] = layer_record(name, module, levels, base, bits, qmin, qmax, self.name,
                                             block=self.block, multipliers=multipliers)
            else:
                axis = output_axis(module) if self.per_channel else None
                levels, step, qmin, qmax = symmetric_levels(weight, bits, axis)
                records[name] = layer_record(name, module, levels, step, bits, qmin, qmax, self.name,
                                             self.per_channel)
        rounding = rounding_named(self.rounding, ref is not None)
        rounded(model, layers, records, {n: UniformGrid(r) for n, r in records.items()}, rounding, ref)
        return QuantizedModel(model, records, self.name, bits, {"rounding": rounding.name})


class UniformGrid:
    """A record's symmetric grid as an Assigner (edgewise.compress.quant.rounding): a value's level is its nearest,
    clipped to the record's level range."""

    nearest = True  # what learned rounding (edgewise.compress.quant.rounding) needs of a grid

    def __init__(self, record: QuantizedLayer) -> None:
        scale = np.array(np.broadcast_to(record.scale(), record.levels.shape), dtype=np.float32)
        self.steps = torch.from_numpy(scale).reshape(record.levels.shape[0], -1)
        self.qmin, self.qmax = record.qmin, record.qmax

    def __call__(self, values: torch.Tensor, rows: slice, columns: slice) -> torch.Tensor:
        return torch.clamp(torch.round(values / self.steps[rows, columns]), self.qmin, self.qmax).to(torch.int64)
