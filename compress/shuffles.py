"""Channel shuffles (ShuffleNet): where a forward interleaves its channel groups, which layers' widths the shuffles
fix, and a forward with the shuffles cut that torch-pruning can trace.

A shuffle views (N, C, H, W) as (N, g, C/g, H, W), swaps the two channel axes and flattens them
back: channel c of group k moves to position c x g + k. torch-pruning cannot map indices through
it (it fails, or prunes into a broken network). Cut there, the graph still couples every channel
inside each branch (a ShuffleNet unit's 1x1 -> depthwise -> 1x1 width), and those are pruned; the
channels that enter a shuffle, and a depthwise convolution reading one (its channels are the
shuffle's), keep their width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from edgewise.compress.layers import WEIGHT_LAYERS, layers_behind, recorded_producers
from edgewise.compress.modes import evaluating
from edgewise.compress.outputs import tensors_of
from edgewise.compress.running import running_modules


class _ShuffleWatch(TorchFunctionMode):
    """Watches a forward for shuffles: a view/reshape that splits a 4-D tensor's channel axis in two, then a
    transpose/permute swapping the two channel axes (a split alone, a detection head viewing its output as anchors x
    values, is no shuffle). Records where each happens and the tensor entering it, follows the shuffled tensors to
    the layers that read them, and with `cut` hands on the shuffled tensor detached."""

    def __init__(self, running: list[nn.Module], cut: bool) -> None:
        super().__init__()
        self.running, self.cut = running, cut
        self.split: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id of a split view -> (view, its source)
        self.shuffled: dict[int, torch.Tensor] = {}  # tensors made from a shuffle's result by no layer of weights
        self.sources: list[torch.Tensor] = []
        self.where: list[nn.Module | None] = []
        self.readers: list[nn.Module] = []

    def _swaps_channels(self, name: str, args: tuple) -> bool:
        if name == "transpose":
            return sorted(int(d) % 5 for d in args[1:3]) == [1, 2]
        dims = args[1:] if len(args) > 2 else args[1]
        return [int(d) % 5 for d in dims][1:3] == [2, 1]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        source = args[0] if args else None
        if (name in ("view", "reshape") and isinstance(out, torch.Tensor) and isinstance(source, torch.Tensor)
                and source.ndim == 4 and out.ndim == 5
                and out.shape[1] * out.shape[2] == source.shape[1] > out.shape[1] > 1):
            self.split[id(out)] = (out, source)
            return out
        if (name in ("transpose", "permute") and isinstance(source, torch.Tensor) and id(source) in self.split
                and self._swaps_channels(name, args)):
            self.sources.append(self.split[id(source)][1])
            self.where.append(self.running[-1] if self.running else None)
            out = out.detach() if self.cut else out
            self.shuffled[id(out)] = out
            return out
        inputs = [t for t in tensors_of([*args, *(kwargs or {}).values()]) if id(t) in self.shuffled]
        if inputs:
            layer = self.running[-1] if self.running else None
            if isinstance(layer, WEIGHT_LAYERS):
                self.readers.append(layer)
            else:
                self.shuffled.update((id(t), t) for t in tensors_of(out))
        return out


@dataclass
class Shuffles:
    """The channel shuffles of a model's forward: the modules they happen in, the layers whose output channels enter
    one (their width is the shuffle's) and the depthwise convolutions reading a shuffled tensor (their channels are
    its channels)."""

    where: list[str] = field(default_factory=list)
    producers: dict[str, str] = field(default_factory=dict)  # layer -> where the shuffle it feeds happens
    depthwise_readers: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.where)

    def holds(self, layer: str) -> str:
        """Why the shuffle fixes `layer`'s output channels ('' when it does not)."""
        if layer in self.producers:
            return (f"its channels enter the channel shuffle in {self.producers[layer]}, which interleaves them with "
                    "another branch's (torch-pruning cannot follow a shuffle)")
        if layer in self.depthwise_readers:
            return "it is a depthwise convolution reading a channel shuffle's output, whose channels it keeps"
        return ""


def _is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1 and module.groups == module.in_channels


def find_shuffles(model: nn.Module, example_input: torch.Tensor) -> Shuffles:
    """The channel shuffles of `model`'s forward on `example_input` (an empty record for a model without any, or one
    whose forward fails: the dependency trace then reports the model's own error)."""
    names = {module: name for name, module in model.named_modules()}
    try:
        with (torch.enable_grad(), evaluating(model), recorded_producers(model) as produced,
              running_modules() as running, _ShuffleWatch(running, cut=False) as watch):
            model(example_input)
    except Exception:  # a diagnosis only
        return Shuffles()
    if not watch.sources:
        return Shuffles()
    where = [names.get(m, "") or "the model's forward" for m in watch.where]
    producers: dict[str, str] = {}
    for source, place in zip(watch.sources, where, strict=True):
        # a path back from a later shuffle runs through the earlier ones: a layer feeds the first it reaches
        for layer in layers_behind([source], produced):
            producers.setdefault(layer, place)
    return Shuffles(list(dict.fromkeys(where)), producers, {names[m] for m in watch.readers if _is_depthwise(m)})


class ShufflesCut(nn.Module):
    """`model` with its channel shuffles cut, for torch-pruning to trace: the shuffled tensors are detached, and the
    tensors entering each shuffle are returned beside the model's outputs, so that the trace reaches every layer."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> list[torch.Tensor]:
        with running_modules() as running, _ShuffleWatch(running, cut=True) as watch:
            out = self.model(*args)
        return [*tensors_of(out), *watch.sources]
