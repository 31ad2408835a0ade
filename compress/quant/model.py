"""The quantized model: a module computing with dequantized weights, its records, and moving records in and out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from edgewise.base.records import QuantizedLayer
from edgewise.board.errors import UserError
from edgewise.compress.layers import RecurrentMatrix, layer_kind, output_axis, recurrent_matrices, weight_layers


@dataclass
class QuantizedModel:
    """A model whose weight layers compute with dequantized 4-bit weights, and the records that describe them."""

    model: nn.Module
    records: dict[str, QuantizedLayer]
    method: str
    bits: int
    history: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Per layer: shape, sparsity, entropy, step; and the totals (JSON-able)."""
        layers = [{"layer": n, "kind": r.kind, "shape": list(r.levels.shape), "sparsity": r.sparsity,
                   "entropy_bits": r.entropy(), "step": r.step.tolist(), "qmin": r.qmin, "qmax": r.qmax}
                  for n, r in self.records.items()]
        weights = sum(r.levels.size for r in self.records.values())
        zeros = sum(int((r.levels == 0).sum()) for r in self.records.values())
        return {"method": self.method, "bits": self.bits, "weights": weights, "sparsity": zeros / max(weights, 1),
                "entropy_bits": weighted_entropy(self.records), "layers": layers, "history": self.history}


def weighted_entropy(records: dict[str, QuantizedLayer]) -> float:
    """Entropy of the levels in bits per weight, averaged over layers by their weight counts."""
    total = sum(r.levels.size for r in records.values())
    return sum(r.entropy() * r.levels.size for r in records.values()) / max(total, 1)


def weight_layers_to_quantize(model: nn.Module, ignore: tuple[str, ...] = ()
                              ) -> dict[str, nn.Module | RecurrentMatrix]:
    """Conv and linear layers of `model` and the weight matrices of its LSTMs and GRUs (all of them unless ignored;
    ignoring a recurrent layer ignores its matrices), by name."""
    matrices = recurrent_matrices(model)
    owners = {n: n.rpartition(".")[0] for n in matrices}
    modules: dict[str, nn.Module | RecurrentMatrix] = {**weight_layers(model), **matrices}
    unknown = [n for n in ignore if n not in modules and n not in owners.values()]
    if unknown:
        raise UserError(f"layers to leave in float not found: {', '.join(unknown)}",
                        "use names of conv/linear/LSTM/GRU layers from model.named_modules()")
    return {n: m for n, m in modules.items() if n not in ignore and owners.get(n) not in ignore}


def layer_record(name: str, module: nn.Module | RecurrentMatrix, levels: np.ndarray | torch.Tensor, step: Any,
                 bits: int, qmin: int, qmax: int, method: str, per_channel: bool = False, block: int | None = None,
                 multipliers: np.ndarray | None = None) -> QuantizedLayer:
    """The record of `module`'s quantized weight: its levels, step(s) (per channel, with integer `multipliers` per
    `block` weights when blocked), grid and float bias."""
    levels = levels.cpu().numpy() if isinstance(levels, torch.Tensor) else levels
    return QuantizedLayer(
        name, layer_kind(module), levels, np.asarray(step, dtype=np.float32), bits, qmin, qmax,
        output_axis(module) if per_channel or block is not None else None,
        None if module.bias is None else module.bias.detach().cpu().numpy().copy(), method, block=block,
        multipliers=multipliers)


def write_back(module: nn.Module | RecurrentMatrix, record: QuantizedLayer) -> None:
    """Set the module's weight to the record's dequantized weight (float32 levels x step)."""
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(record.dequantize()))


def floats_of(model: nn.Module, records: dict[str, QuantizedLayer]) -> dict[str, Any]:
    """Every float parameter and buffer of `model` that the records do not hold (BatchNorm, unquantized layers)."""
    held = {r.weight_key for r in records.values()} | {f"{n}.bias" for n, r in records.items() if r.bias is not None}
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()
            if k not in held and v.is_floating_point()}


def load_decoded(model: nn.Module, records: dict[str, QuantizedLayer], floats: dict[str, Any]) -> nn.Module:
    """Put decoded records and float parameters into `model` (same architecture and shapes); returns it."""
    state = model.state_dict()
    updates = {k: torch.from_numpy(v.copy()) for k, v in floats.items()}
    for name, r in records.items():
        updates[r.weight_key] = torch.from_numpy(r.dequantize())
        if r.bias is not None:
            updates[f"{name}.bias"] = torch.from_numpy(r.bias.copy())
    unknown = sorted(set(updates) - set(state))
    if unknown:
        raise UserError(f"decoded tensors {unknown[:3]} do not exist in the model",
                        "decode into the model the bitstream was encoded from")
    for key, value in updates.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise UserError(f"decoded {key} has shape {tuple(value.shape)}, the model {tuple(state[key].shape)}",
                            "decode into the model the bitstream was encoded from (pruned shapes)")
    model.load_state_dict(updates, strict=False)
    return model.eval()
