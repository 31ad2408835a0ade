"""The uniform quantizer: symmetric round-to-nearest per layer or per output channel, no data, no training."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from edgewise.base.grid import symmetric_levels
from edgewise.compress.layers import output_axis
from edgewise.compress.quant.base import Quantizer
from edgewise.compress.quant.model import QuantizedModel, layer_record, write_back
from edgewise.compress.reference import ReferenceSamples


class UniformQuantizer(Quantizer):
    """step = max|w| / (2^(b-1) - 1), levels rounded to nearest: the baseline every other quantizer is held to."""

    name = "uniform"

    def __init__(self, per_channel: bool = False) -> None:
        self.per_channel = per_channel

    def quantize(self, model: nn.Module, layers: dict[str, nn.Module], bits: int, ref: ReferenceSamples | None,
                 train: Callable[..., QuantizedModel] | None) -> QuantizedModel:
        """Round each layer's weight onto its symmetric grid and write the grid values back."""
        records = {}
        for name, module in layers.items():
            axis = output_axis(module) if self.per_channel else None
            levels, step, qmin, qmax = symmetric_levels(module.weight.detach().cpu().numpy(), bits, axis)
            records[name] = layer_record(name, module, levels, step, bits, qmin, qmax, self.name, self.per_channel)
            write_back(module, records[name])
        return QuantizedModel(model, records, self.name, bits)
