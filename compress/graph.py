"""Channel groups from torch-pruning's dependency graph: channels that must be removed together, and removal."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from edgewise.base.errors import UserError
from edgewise.compress.layers import WEIGHT_LAYERS


class PruningError(UserError):
    """A model (or one of its layers) that cannot be pruned as asked; names the layer and why."""


@dataclass
class ChannelGroup:
    """Output channels of one or more coupled layers (residual adds, depthwise convs) that are cut at the same indices.

    `members` lists every conv/linear layer whose output channels belong to the group, as
    (layer name, its channel indices, the matching group indices).
    """

    name: str
    root: nn.Module
    channels: int
    members: list[tuple[str, list[int], list[int]]] = field(default_factory=list)


class ChannelGraph:
    """The dependency graph of a model and its prunable channel groups (the output layer left alone by default)."""

    def __init__(self, model: nn.Module, example_input: torch.Tensor, ignore: list[str] | tuple[str, ...] = (),
                 ignore_output_layer: bool = True) -> None:
        self.model = model
        self.example_input = example_input
        names = {m: n for n, m in model.named_modules()}
        self._order = {n: i for i, (n, _) in enumerate(model.named_modules())}
        modules = dict(model.named_modules())
        unknown = [n for n in ignore if n not in modules]
        if unknown:
            raise PruningError(f"layers to ignore not found in the model: {', '.join(unknown)}",
                               "use names from model.named_modules()")
        ignored = [modules[n] for n in ignore]
        if ignore_output_layer:
            ignored.append(modules[self.output_layer()])
        was_training = model.training
        model.eval()
        try:
            self.graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
        except Exception as exc:
            raise PruningError(f"torch-pruning cannot trace this model: {type(exc).__name__}: {exc}",
                               "simplify the forward (no data-dependent control flow) or prune a traceable part"
                               ) from exc
        finally:
            model.train(was_training)
        self.groups: list[ChannelGroup] = []
        for group in self.graph.get_all_groups(ignored_layers=ignored, root_module_types=list(WEIGHT_LAYERS)):
            members = []
            for item in group:
                dep, idxs = item.dep, item.idxs
                module = dep.target.module
                if self.graph.is_out_channel_pruning_fn(dep.handler) and isinstance(module, WEIGHT_LAYERS):
                    if isinstance(module, nn.modules.conv._ConvNd) and 1 < module.groups != module.in_channels:
                        raise PruningError(
                            f"layer {names[module]} is a grouped convolution (groups={module.groups}); channel "
                            "pruning would have to keep every group the same size",
                            f"add '{names[module]}' to the layers to ignore")
                    members.append((names[module], list(idxs), list(item.root_idxs)))
            if not members:
                continue
            members.sort(key=lambda m: self._order[m[0]])
            root = group[0].dep.target.module
            self.groups.append(ChannelGroup(members[0][0], root, len(group[0].idxs), members))

    def output_layer(self) -> str:
        """Name of the last conv/linear layer the forward pass runs: the one producing the logits."""
        last: list[str] = []
        hooks = [m.register_forward_hook(lambda mod, a, o, n=n: last.append(n))
                 for n, m in self.model.named_modules() if isinstance(m, WEIGHT_LAYERS)]
        try:
            with torch.no_grad():
                self.model.eval()(self.example_input)
        finally:
            for h in hooks:
                h.remove()
        if not last:
            raise PruningError("the model has no convolution or linear layer to prune", "nothing to do here")
        return last[-1]

    def group_scores(self, layer_scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per group, the mean of its member layers' channel scores (mapped through the group's index coupling)."""
        out = {}
        for g in self.groups:
            total = torch.zeros(g.channels, dtype=torch.float64)
            count = torch.zeros(g.channels, dtype=torch.float64)
            for name, idxs, root_idxs in g.members:
                if name in layer_scores:
                    total[root_idxs] += layer_scores[name].to(torch.float64)[idxs]
                    count[root_idxs] += 1
            out[g.name] = total / count.clamp(min=1)
        return out

    def remove(self, removal: dict[str, list[int]]) -> None:
        """Physically remove the given channel indices of each group (the model's tensors shrink in place)."""
        by_name = {g.name: g for g in self.groups}
        for name, idxs in removal.items():
            if not idxs:
                continue
            group = by_name[name]
            pruner = self.graph.get_pruner_of_module(group.root)
            try:
                plan = self.graph.get_pruning_group(group.root, pruner.prune_out_channels, idxs=sorted(idxs))
                if not self.graph.check_pruning_group(plan):
                    raise PruningError(f"removing {len(idxs)} channels of group {name} would empty a layer",
                                       "keep at least one channel per layer (min_channels)")
                plan.prune()
            except PruningError:
                raise
            except Exception as exc:
                raise PruningError(f"cannot remove channels of layer {name}: {type(exc).__name__}: {exc}",
                                   f"add '{name}' to the layers to ignore") from exc
