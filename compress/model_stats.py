"""Parameter and multiply-accumulate counts of a model, per layer and in total, from one traced forward."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from edgewise.base.device import device_of
from edgewise.compress.layers import WEIGHT_LAYERS
from edgewise.compress.modes import evaluating


@dataclass(frozen=True)
class LayerCost:
    """One weight layer: its type, weight shape, parameter count and MACs for one input sample."""

    name: str
    kind: str
    weight_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelCost:
    """Totals over the model (parameters include every tensor, MACs only conv, linear and recurrent layers)."""

    params: int
    macs: int
    layers: list[LayerCost] = field(default_factory=list)


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements in `model` (shared tensors counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


RECURRENT_LAYERS = (nn.LSTM, nn.GRU, nn.RNN)
_GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}


def _recurrent_macs(module: nn.LSTM | nn.GRU | nn.RNN, out: torch.Tensor) -> int:
    """Per sample: every step, every direction and layer, each gate's input and hidden matrix products."""
    steps = out.shape[1 if module.batch_first else 0] if out.dim() == 3 else 1
    directions = 2 if module.bidirectional else 1
    total = 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else module.hidden_size * directions
        total += _GATES[type(module)] * module.hidden_size * (inputs + module.hidden_size)
    return steps * directions * total


def _layer_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, RECURRENT_LAYERS):
        return _recurrent_macs(module, out[0] if isinstance(out, tuple) else out)
    batch = out.shape[0]
    if isinstance(module, nn.Linear):
        return module.in_features * out.numel() // batch
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        # every input position scatters into kernel-size outputs of out_channels/groups
        kernel = math.prod(module.kernel_size)
        return inp.numel() // batch * kernel * module.out_channels // module.groups
    kernel = math.prod(module.kernel_size)
    return out.numel() // batch * kernel * module.in_channels // module.groups


@torch.no_grad()
def measure_cost(model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> ModelCost:
    """Count parameters and per-sample MACs of `model` by running one sample of `input_shape` (C, H, W) of `dtype`
    (zeros: token and byte models take integers).

    MACs are counted for convolutions (including depthwise and transposed), linear layers and
    recurrent layers (LSTM, GRU, RNN: every step's gate products), the layers that dominate cost on
    every target; element-wise work is left out.
    """
    layers: list[LayerCost] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, WEIGHT_LAYERS + RECURRENT_LAYERS):
            def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor, name: str = name) -> None:
                weight = mod.weight if hasattr(mod, "weight") else mod.weight_ih_l0
                layers.append(LayerCost(name, type(mod).__name__, tuple(weight.shape),
                                        sum(p.numel() for p in mod.parameters(recurse=False)),
                                        _layer_macs(mod, args[0], out)))
            hooks.append(module.register_forward_hook(hook))
    try:
        with evaluating(model):
            model(torch.zeros(1, *input_shape, dtype=dtype, device=device_of(model)))
    finally:
        for h in hooks:
            h.remove()
    return ModelCost(count_parameters(model), sum(layer.macs for layer in layers), layers)
