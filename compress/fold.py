"""Batch-norm folding: merge each BatchNorm into the conv or linear layer that feeds it, exactly."""

from __future__ import annotations

import torch
from torch import nn

from edgewise.base.device import device_of
from edgewise.board.errors import UserError
from edgewise.compress.arguments import check_module, forward
from edgewise.compress.copying import model_copy
from edgewise.compress.layers import WEIGHT_LAYERS, output_axis
from edgewise.compress.modes import evaluating
from edgewise.compress.outputs import tensors_of

_BATCHNORM = nn.modules.batchnorm._BatchNorm


def batchnorm_pairs(model: nn.Module, example_input: torch.Tensor) -> list[tuple[str, str]]:
    """(layer, batchnorm) name pairs where the BatchNorm's input is exactly that layer's output, found by running the
    model once (module order says nothing: DenseNet's BatchNorms come before their convolutions)."""
    # the outputs are kept alive while the model runs: a freed tensor's id would be reused by a later one
    producer: dict[int, tuple[str, torch.Tensor]] = {}
    pairs: list[tuple[str, str]] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, WEIGHT_LAYERS):
            hooks.append(module.register_forward_hook(
                lambda m, a, out, name=name: producer.__setitem__(id(out), (name, out))))
        elif isinstance(module, _BATCHNORM):
            hooks.append(module.register_forward_hook(
                lambda m, a, out, name=name: pairs.append((producer[id(a[0])][0], name)) if id(a[0]) in producer
                else None))
    try:
        with torch.no_grad():
            model(example_input.to(device_of(model)))
    finally:
        for h in hooks:
            h.remove()
    return pairs


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


@torch.no_grad()
def fold_batchnorm(model: nn.Module, example_input: torch.Tensor, atol: float = 1e-4) -> tuple[nn.Module, list[str]]:
    """A copy of `model` with every BatchNorm that directly follows a conv/linear layer folded into it.

    gamma_fold = gamma / sqrt(var + eps) scales the layer's output channels and
    beta_fold = beta - gamma_fold * mean becomes (part of) its bias; the BatchNorm is replaced by
    an identity. The folded model is checked against the original on `example_input` (eval
    mode); a difference above `atol` (relative to the output's scale) is an error. Returns the
    folded model and the names of the folded BatchNorms. `model` itself is left as it was, train mode included.
    """
    with evaluating(check_module(model)):
        forward(model, example_input.to(device_of(model)))  # an input it cannot take: one line, before any copy
        return _folded(model, example_input, atol)


def _folded(original: nn.Module, example_input: torch.Tensor, atol: float) -> tuple[nn.Module, list[str]]:
    folded = model_copy(original).eval()
    example_input = example_input.to(device_of(original))
    modules = dict(folded.named_modules())
    done = []
    for layer_name, bn_name in batchnorm_pairs(folded, example_input):
        layer, bn = modules[layer_name], modules[bn_name]
        if bn.running_var is None or bn.running_mean is None:
            continue  # a BatchNorm without running statistics normalises by the batch: nothing fixed to fold
        scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.affine else torch.zeros_like(bn.running_mean)) - scale * bn.running_mean
        channel_axis = output_axis(layer)
        shape = [1] * layer.weight.dim()
        shape[channel_axis] = -1
        if channel_axis == 1 and layer.groups > 1:
            raise UserError(f"cannot fold {bn_name} into grouped transposed convolution {layer_name}",
                            "keep that BatchNorm (skip folding)")
        layer.weight.copy_(layer.weight * scale.reshape(shape))
        bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
        new_bias = bias * scale + shift
        if layer.bias is None:
            layer.bias = nn.Parameter(new_bias)
        else:
            layer.bias.copy_(new_bias)
        _set_module(folded, bn_name, nn.Identity())
        done.append(bn_name)
    # every output tensor is compared: a model may return several (a face detector's boxes, landmarks, scores)
    for reference, result in zip(tensors_of(original(example_input)), tensors_of(folded(example_input)), strict=True):
        tolerance = atol * max(1.0, float(reference.abs().max()))
        diff = float((reference - result).abs().max())
        if diff > tolerance:
            raise UserError(f"batch-norm folding changed the outputs by {diff:.3g} (tolerance {tolerance:.3g})",
                            "a folded layer's output is also used elsewhere; keep BatchNorm in this model")
    return folded, done
