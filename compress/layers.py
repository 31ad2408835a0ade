"""Which torch layers carry the weights the kit scores, prunes, quantizes and counts, and where their channels lie."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

# convolutions (plain, grouped, depthwise, transposed) and linear layers
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
                 nn.Linear)


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The conv and linear layers of `model` by name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)}


def output_axis(module: nn.Module) -> int:
    """The weight axis of the output channels: 1 for transposed convolutions (in, out, ...), else 0."""
    return 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0


@contextmanager
def recorded_producers(model: nn.Module) -> Iterator[dict[object, str]]:
    """Within the block, every forward of `model` records which conv/linear layer produced each output: the output's
    autograd node -> the layer's name (run the forward with gradients enabled)."""
    produced: dict[object, str] = {}

    def record(name: str):
        def hook(module: nn.Module, args: tuple, out: object) -> None:
            if isinstance(out, torch.Tensor) and out.grad_fn is not None:
                produced[out.grad_fn] = name
        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in weight_layers(model).items()]
    try:
        yield produced
    finally:
        for h in hooks:
            h.remove()


def layers_behind(tensors: list[torch.Tensor], produced: dict[object, str]) -> set[str]:
    """The conv/linear layers met first on every path back from `tensors` through the autograd graph (across
    activations, reshapes, concatenations, upsampling): the layers whose output channels become these tensors'."""
    found: set[str] = set()
    seen: set[object] = set()
    stack = [t.grad_fn for t in tensors if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node in produced:
            found.add(produced[node])
            continue
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


def converted_from_onnx(model: nn.Module) -> bool:
    """Whether `model` holds layers onnx2torch converted from ONNX (edgewise.onnxin): their constants may
    tie channels to fixed widths, and their model files need their functions restored."""
    return any(type(m).__module__.startswith("onnx2torch.") for m in model.modules())
