"""The size ladder in bytes: float32 -> pruned -> packed low-bit -> NNCodec bitstream, with bits per weight."""

from __future__ import annotations

from typing import Any

from torch import nn

from edgewise.base.records import QuantizedLayer
from edgewise.compress.layers import recurrent_matrices, weight_layers


def float_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer of `model` stored as float32."""
    return 4 * (sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers()
                                                                 if b.is_floating_point()))


def packed_bytes(model: nn.Module, records: dict[str, QuantizedLayer]) -> int:
    """Bytes of the quantized model with levels packed at their bit width, steps and the rest as float32."""
    quantized = {r.weight_key for r in records.values()}
    rest = sum(p.numel() for n, p in model.named_parameters() if n not in quantized)
    rest += sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return sum(r.packed_bytes() for r in records.values()) + 4 * rest


def weight_count(model: nn.Module) -> int:
    """Number of weights in the conv and linear layers and the LSTM and GRU matrices (the tensors that get
    quantized)."""
    layers = [*weight_layers(model).values(), *recurrent_matrices(model).values()]
    return sum(m.weight.numel() for m in layers)


def ladder_row(stage: str, size: int, weights: int, score: float | None = None, **extra: Any) -> dict[str, Any]:
    """One rung: stage, bytes, bits per weight (size x 8 over the weight-layer weights) and any extra metrics."""
    return {"stage": stage, "bytes": size, "bits_per_weight": 8 * size / max(weights, 1), "score": score, **extra}
