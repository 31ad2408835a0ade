"""Quantizing a model's weight layers into records: uniform, ECQ and ECQx, post-training or with training."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compress.quant.ecq import assign, cluster_pmf, lambda_max
from compress.quant.grid import ecq_grid, uniform_levels
from compress.reference import ReferenceSamples
from compress.relevance import weight_relevance
from compress.taps import PRUNABLE
from edgewise.errors import UserError
from edgewise.records import QuantizedLayer

METHODS = ("uniform", "ecq", "ecqx")
RELEVANCE_SMOOTHING = 0.9  # R <- 0.9 R_batch + 0.1 R_previous (ECQx)


@dataclass
class Grid:
    """A layer's fixed ECQ grid and its share of the global lambda."""

    step: float
    qmin: int
    qmax: int
    decay: float
    lam_max: float = 0.0


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


def weight_layers_to_quantize(model: nn.Module, ignore: tuple[str, ...] = ()) -> dict[str, nn.Module]:
    """Conv and linear layers of `model` (all of them unless ignored), by name."""
    modules = {n: m for n, m in model.named_modules() if isinstance(m, PRUNABLE)}
    unknown = [n for n in ignore if n not in modules]
    if unknown:
        raise UserError(f"layers to leave in float not found: {', '.join(unknown)}",
                        "use names of conv/linear layers from model.named_modules()")
    return {n: m for n, m in modules.items() if n not in ignore}


def _channel_axis(module: nn.Module) -> int:
    return 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0


def _record(name: str, module: nn.Module, levels: torch.Tensor, step: torch.Tensor | float, bits: int, qmin: int,
            qmax: int, method: str, per_channel: bool = False) -> QuantizedLayer:
    return QuantizedLayer(
        name, type(module).__name__, levels.numpy(), torch.as_tensor(step, dtype=torch.float32).numpy(), bits, qmin,
        qmax, _channel_axis(module) if per_channel else None,
        None if module.bias is None else module.bias.detach().numpy().copy(), method)


def write_back(module: nn.Module, record: QuantizedLayer) -> None:
    """Set the module's weight to the record's dequantized weight (float32 levels x step)."""
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(record.dequantize()))


def init_grids(layers: dict[str, nn.Module], bits: int) -> dict[str, Grid]:
    """The fixed ECQ grid of each layer and its lambda decay (larger layers are constrained more)."""
    largest = max(m.weight.numel() for m in layers.values())
    grids = {}
    for name, module in layers.items():
        step, qmin, qmax = ecq_grid(module.weight, bits)
        grids[name] = Grid(step, qmin, qmax, (module.weight.numel() / largest + 0.05) / 1.05)
    return grids


def layer_lambda(weight: torch.Tensor, grid: Grid, lam: float) -> float:
    """Absolute lambda of a layer: Lambda x lambda_max of the layer x its size decay."""
    centroids = torch.arange(grid.qmin, grid.qmax + 1, dtype=torch.float32) * grid.step
    info = -torch.log2(cluster_pmf(weight.detach().to(torch.float32), centroids, -grid.qmin)).to(torch.float32)
    grid.lam_max = lambda_max(weight.detach().to(torch.float32), centroids, info, -grid.qmin)
    return lam * grid.lam_max * grid.decay


def ecq_records(weights: dict[str, torch.Tensor], layers: dict[str, nn.Module], grids: dict[str, Grid], lam: float,
                bits: int, relevance: dict[str, torch.Tensor] | None = None, rho: float = 2.0,
                p: float = 0.1) -> tuple[dict[str, QuantizedLayer], dict[str, dict]]:
    """Assign every layer's (full-precision) weights with ECQ, or ECQx where relevances are given."""
    records, info = {}, {}
    for name, module in layers.items():
        grid = grids[name]
        rel = None if relevance is None else relevance[name]
        levels, meta = assign(weights[name], grid.step, grid.qmin, grid.qmax,
                              layer_lambda(weights[name], grid, lam), rel, rho, p)
        method = "ecq" if rel is None else "ecqx"
        records[name] = _record(name, module, levels, grid.step, bits, grid.qmin, grid.qmax, method)
        info[name] = meta
    return records, info


def normalized_relevance(model: nn.Module, ref: ReferenceSamples, names: set[str],
                         previous: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Weight relevances |R| / max |R| per layer, smoothed with the previous ones (0.9 new + 0.1 old)."""
    raw = weight_relevance(model, ref, names)
    out = {}
    for name, r in raw.items():
        r = r / r.max().clamp(min=1e-12)
        out[name] = r if previous is None else RELEVANCE_SMOOTHING * r + (1 - RELEVANCE_SMOOTHING) * previous[name]
    return out


def quantize(model: nn.Module, method: str = "ecq", bits: int = 4, *, lam: float = 0.05,
             ref: ReferenceSamples | None = None, per_channel: bool = False, rho: float = 2.0, p: float = 0.1,
             ignore: tuple[str, ...] = (), train: Callable[..., dict[str, Any]] | None = None) -> QuantizedModel:
    """Quantize every conv/linear weight of a copy of `model` to `bits` and return the model and its records.

    `uniform`: symmetric round-to-nearest (per layer, or per output channel); `ecq`: the
    entropy-constrained assignment with global `lam` (Lambda); `ecqx`: ECQ whose zero cluster
    is corrected by LRP weight relevances computed on `ref` (rho, p). Biases and BatchNorm stay
    float. `train`, when given, is `compress.quant.qat.train_quantized` bound to data: it runs
    quantization-aware training from the initial assignment. The input model is not changed.
    """
    if method not in METHODS:
        raise UserError(f"unknown quantization method {method!r}", f"use one of {', '.join(METHODS)}")
    if not 2 <= bits <= 8:
        raise UserError(f"bit width must be within 2..8, got {bits}", "use e.g. 4")
    if lam < 0:
        raise UserError(f"lambda must be >= 0, got {lam}", "use e.g. 0.05 (larger: sparser, smaller files)")
    if method == "ecqx" and ref is None:
        raise UserError("ECQx needs reference samples for its weight relevances", "pass ref=ReferenceSamples(...)")
    work = copy.deepcopy(model).eval()
    layers = weight_layers_to_quantize(work, ignore)
    if method == "uniform":
        records = {}
        for name, module in layers.items():
            levels, step, qmin, qmax = uniform_levels(module.weight, bits, per_channel, _channel_axis(module))
            records[name] = _record(name, module, levels, step, bits, qmin, qmax, "uniform", per_channel)
            write_back(module, records[name])
        return QuantizedModel(work, records, method, bits)
    grids = init_grids(layers, bits)
    if train is not None:
        return train(work, layers, grids, method=method, bits=bits, lam=lam, ref=ref, rho=rho, p=p)
    relevance = normalized_relevance(work, ref, set(layers)) if method == "ecqx" else None
    weights = {n: m.weight.detach().clone() for n, m in layers.items()}
    records, info = ecq_records(weights, layers, grids, lam, bits, relevance, rho, p)
    for name, module in layers.items():
        write_back(module, records[name])
    return QuantizedModel(work, records, method, bits, {"assignment": info})


def floats_of(model: nn.Module, records: dict[str, QuantizedLayer]) -> dict[str, Any]:
    """Every float parameter and buffer of `model` that the records do not hold (BatchNorm, unquantized layers)."""
    import numpy as np

    held = {f"{n}.weight" for n in records} | {f"{n}.bias" for n, r in records.items() if r.bias is not None}
    return {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()
            if k not in held and v.is_floating_point()}


def load_decoded(model: nn.Module, records: dict[str, QuantizedLayer], floats: dict[str, Any]) -> nn.Module:
    """Put decoded records and float parameters into `model` (same architecture and shapes); returns it."""
    state = model.state_dict()
    updates = {k: torch.from_numpy(v.copy()) for k, v in floats.items()}
    for name, r in records.items():
        updates[f"{name}.weight"] = torch.from_numpy(r.dequantize())
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
