"""Forward hooks that capture each conv/linear layer's output, batch-normalised when a BatchNorm follows it, and one
pass watched by hooks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

_BATCHNORM = nn.modules.batchnorm._BatchNorm


@contextlib.contextmanager
def capture_outputs(model: nn.Module, names: set[str], retain_grad: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Record, per forward, the output of each named layer, or the output of the BatchNorm that directly consumes it.

    The batch-normalised output is the tensor an activation function sees in conv-BN-ReLU stacks,
    so activation statistics and gradients are taken there. With `retain_grad` the recorded
    tensors keep their gradients after backward. The dict is refilled on every forward. Every
    recorded tensor has its channels on axis 1: a linear layer applied to tokens or channels-last
    maps (ViT, ConvNeXt: (N, ..., C)) is recorded as a channels-first view that the forward goes on
    through, so its gradient is that of the layer's output.
    """
    outputs: dict[str, torch.Tensor] = {}
    producer: dict[int, str] = {}

    def start(mod: nn.Module, args: tuple) -> None:
        # ids of freed tensors are reused: only this forward's outputs may match a BatchNorm input
        producer.clear()
        outputs.clear()

    hooks = [model.register_forward_pre_hook(start)]

    def keep(name: str, tensor: torch.Tensor) -> None:
        if retain_grad and tensor.requires_grad:
            tensor.retain_grad()
        outputs[name] = tensor

    for name, module in model.named_modules():
        if name in names:
            def on_layer(mod: nn.Module, args: tuple, out: torch.Tensor, name: str = name) -> torch.Tensor | None:
                if isinstance(mod, nn.Linear) and out.dim() > 2:
                    first = out.movedim(-1, 1)
                    keep(name, first)
                    return first.movedim(1, -1)
                producer[id(out)] = name
                keep(name, out)
                return None
            hooks.append(module.register_forward_hook(on_layer))
        elif isinstance(module, _BATCHNORM):
            def on_norm(mod: nn.Module, args: tuple, out: torch.Tensor) -> None:
                source = producer.get(id(args[0]))
                if source is not None:
                    keep(source, out)
            hooks.append(module.register_forward_hook(on_norm))
    try:
        yield outputs
    finally:
        for h in hooks:
            h.remove()


def hooked_pass(model: nn.Module, x: torch.Tensor, modules: Iterable[nn.Module],
                hook: Callable[[nn.Module, tuple, object], None]) -> None:
    """One forward pass of `model` on `x` without gradients, with `hook` a forward hook of each of `modules` for
    that pass alone."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
