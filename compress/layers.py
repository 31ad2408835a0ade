"""Which torch layers carry the weights the kit scores, prunes, quantizes and counts, and where their channels lie."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

# convolutions (plain, grouped, depthwise, transposed) and linear layers
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
                 nn.Linear)
RECURRENT_LAYERS = (nn.LSTM, nn.GRU)

_TORCH_GATES = {"LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2)}  # per torch gate block, the ONNX block it is


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The conv and linear layers of `model` by name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)}


class RecurrentMatrix:
    """One weight matrix of a torch LSTM or GRU (the input or the hidden weights of one layer and direction), standing
    for a layer where the quantizers read `weight` and `bias`: its rows are the gates' units, and its `weight` is the
    recurrent layer's own parameter, so writing it writes the layer. Biases stay float in the recurrent layer."""

    bias = None

    def __init__(self, rnn: nn.LSTM | nn.GRU, parameter: str) -> None:
        self.weight: nn.Parameter = getattr(rnn, parameter)
        self.kind = type(rnn).__name__


def recurrent_matrices(model: nn.Module) -> dict[str, RecurrentMatrix]:
    """The input and hidden weight matrices of every LSTM and GRU of `model`, by their state-dict keys
    (`rnn.weight_ih_l0`, `rnn.weight_hh_l0_reverse`, ...); an LSTM's projection (proj_size) is not among them."""
    return {f"{name}.{parameter}".lstrip("."): RecurrentMatrix(module, parameter)
            for name, module in model.named_modules() if isinstance(module, RECURRENT_LAYERS)
            for parameter, _ in module.named_parameters(recurse=False)
            if parameter.startswith(("weight_ih", "weight_hh"))}


def gate_rows(kind: str, rows: int, to_onnx: bool) -> np.ndarray:
    """The row order that restacks a recurrent weight of `rows` rows (gate blocks of equal height) between torch's
    gate order and ONNX's: `weight[gate_rows(...)]`. ONNX stacks an LSTM's gates input, output, forget, cell
    (torch: input, forget, cell, output) and a GRU's update, reset, hidden (torch: reset, update, new)."""
    torch_blocks = _TORCH_GATES[kind]
    order = [torch_blocks.index(i) for i in range(len(torch_blocks))] if to_onnx else list(torch_blocks)
    height = rows // len(torch_blocks)
    return np.concatenate([np.arange(b * height, (b + 1) * height) for b in order])


def layer_kind(layer: nn.Module | RecurrentMatrix) -> str:
    """What a quantized record calls its layer: the torch layer it computes as (a project's subclass of nn.Conv1d
    is a Conv1d to every reader of the records), or the recurrent layer's kind (LSTM, GRU)."""
    if isinstance(layer, RecurrentMatrix):
        return layer.kind
    return next(c.__name__ for c in type(layer).__mro__ if c.__module__.startswith("torch.nn."))


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


def watch_weight_inputs(module: nn.Module, seen: Callable[[torch.Tensor, torch.Tensor], None]
                        ) -> Callable[[], None]:
    """From now on, call `seen(x, z)` with what `module`'s weight is applied to and what that gives, where it is
    applied: a convolution's `_conv_forward`, through which torch's convolutions all compute, sees the tensor the
    kernel slides over even when a subclass reshapes its input first (a Toeplitz layer written as a Conv1d over
    (N, features)); other layers are seen at their forward. Returns what stops it."""
    if hasattr(module, "_conv_forward"):
        compute = module._conv_forward

        def applied(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
            z = compute(x, weight, bias)
            seen(x, z)
            return z

        module._conv_forward = applied
        return lambda: delattr(module, "_conv_forward")
    handle = module.register_forward_hook(lambda _, args, z: seen(args[0], z))
    return handle.remove


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
