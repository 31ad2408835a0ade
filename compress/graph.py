"""Channel groups from torch-pruning's dependency graph: channels that must be removed together, and removal."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.dependency import index_mapping, shape_infer

from edgewise.base.device import device_of
from edgewise.board.errors import UserError
from edgewise.compress.copying import model_copy
from edgewise.compress.group_walk import GroupTooLarge, bounded_walk
from edgewise.compress.heads import HeadGroup, head_groups, head_projections
from edgewise.compress.layers import (
    WEIGHT_LAYERS,
    converted_from_onnx,
    layers_behind,
    output_axis,
    recorded_producers,
)
from edgewise.compress.modes import evaluating
from edgewise.compress.outputs import tensors_of
from edgewise.compress.shuffles import Shuffles, ShufflesCut, find_shuffles


class PruningError(UserError):
    """A model (or one of its layers) that cannot be pruned as asked; names the layer and why."""


def ignore_fix(*layers: str) -> str:
    """The fix that leaves `layers` out of pruning, in each place a user can say so."""
    quoted = ", ".join(f"'{layer}'" for layer in layers)
    return (f"leave {quoted} whole: edgewise prune {' '.join(f'--ignore {layer}' for layer in layers)}, "
            f"prune.ignore: [{', '.join(layers)}] in a recipe, or ignore=({quoted},) in Python")


@dataclass
class ChannelGroup:
    """Output channels of one or more coupled layers (residual adds, depthwise convs) that are cut at the same indices.

    `members` lists every conv/linear layer whose output channels belong to the group, as
    (layer name, its channel indices, the matching group indices); `readers` the layers whose input channels they
    are, alike (what a cut saves there is counted by compress.budget). A group that feeds or leaves
    a grouped convolution (ResNeXt, RegNet) or a GroupNorm has `ch_groups` > 1: its channels are
    ch_groups blocks of `units` channels each, and a unit is cut in every block at once, so every
    block keeps the same size.
    """

    name: str
    root: nn.Module
    channels: int
    members: list[tuple[str, list[int], list[int]]] = field(default_factory=list)
    ch_groups: int = 1
    readers: list[tuple[str, list[int], list[int]]] = field(default_factory=list)

    @property
    def units(self) -> int:
        """How many units can be cut: channels per block."""
        return self.channels // self.ch_groups

    @property
    def width(self) -> int:
        """Channels one unit removes: one per block."""
        return self.ch_groups

    def unit_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """Per unit, the mean score of its channel in every block."""
        return scores.reshape(self.ch_groups, self.units).mean(0)

    def channels_of(self, units: list[int]) -> list[int]:
        """The channel indices of `units`: the unit's place in every block."""
        return sorted(u + block * self.units for block in range(self.ch_groups) for u in units)


def _out_channels(module: nn.Module) -> int:
    return module.weight.shape[output_axis(module)]


def _channel_blocks(module: nn.Module) -> int:
    """How many equal blocks a layer's channels come in: a grouped (not depthwise) convolution's groups, a GroupNorm's
    groups, else 1."""
    if isinstance(module, nn.modules.conv._ConvNd) and 1 < module.groups != module.out_channels:
        return module.groups
    if isinstance(module, nn.GroupNorm):
        return module.num_groups
    return 1


def output_layers(model: nn.Module, example_input: torch.Tensor) -> list[str]:
    """Names of the conv/linear layers that produce the model's outputs: on every path back from each output tensor
    (through upsampling, reshapes, concatenations, activations), the first such layer met. A segmentation model's
    main and auxiliary classifiers, a detector's box and class convolutions, a classifier's head."""
    with torch.enable_grad(), evaluating(model), recorded_producers(model) as produced:
        found = layers_behind(tensors_of(model(example_input)), produced)
    if not found:
        raise PruningError("the model has no convolution or linear layer to prune", "nothing to do here")
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    return sorted(found, key=order.__getitem__)


@contextmanager
def _torch_pruning() -> Iterator[None]:
    """torch-pruning as the kit calls it. Its warnings about parameters outside layers (they are tried on a copy, see
    _removal_breaks) and about deep shape inference are silenced: they tell a user of the kit nothing they can act
    on. A concatenation whose input widths it cannot infer is left without an index mapping, as its code means to:
    it sums the widths before it checks them for None and fails (a concatenation of frames in an audio model
    converted from TensorFlow, basic-pitch's)."""
    mapped = index_mapping.update_concat_index_mapping

    def guarded(graph: tp.DependencyGraph, node: object) -> None:
        if getattr(node.module, "concat_sizes", None) is None and any(
                shape_infer.infer_channels_between(graph, n, node) is None for n in node.inputs):
            return
        mapped(graph, node)

    index_mapping.update_concat_index_mapping = guarded
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
            warnings.filterwarnings("ignore", message="Maximum recursive depth reached")
            yield
    finally:
        index_mapping.update_concat_index_mapping = mapped


def _drop_trace_hooks(model: nn.Module) -> None:
    """Remove the forward hooks a failed torch-pruning trace leaves on `model`'s layers (it removes them only when
    the forward succeeds); left there, they would run on every forward and make the model unpicklable."""
    for module in model.modules():
        for key, hook in list(module._forward_hooks.items()):
            if getattr(hook, "__name__", "") == "_record_grad_fn":
                del module._forward_hooks[key]


def _dependency_graph(model: nn.Module, example_input: torch.Tensor, cut_shuffles: bool = False
                      ) -> tp.DependencyGraph:
    """torch-pruning's dependency graph of `model`; with `cut_shuffles` traced with its channel shuffles cut (see
    compress.shuffles), on the same modules."""
    traced = ShufflesCut(model) if cut_shuffles else model
    frozen = [p for p in model.parameters() if not p.requires_grad]
    if frozen:
        # torch-pruning finds parameters outside layers through autograd: a frozen one (a constant converted from
        # ONNX, such as Paddle's BatchNorm written as Mul and Add) would be missed and left a channel too wide; a
        # forward that refuses them with gradients (running statistics fed to batch_norm) is traced as it is
        try:
            for p in frozen:
                p.requires_grad_(True)
            with _torch_pruning():
                return tp.DependencyGraph().build_dependency(traced, example_inputs=(example_input,))
        except RuntimeError:
            _drop_trace_hooks(traced)
        finally:
            for p in frozen:
                p.requires_grad_(False)
    with _torch_pruning():
        return tp.DependencyGraph().build_dependency(traced, example_inputs=(example_input,))


def _removal_breaks(model: nn.Module, example_input: torch.Tensor, roots: list[str], cut_shuffles: bool) -> str:
    """Why a copy of `model` no longer runs on `example_input` once the first channel of each group rooted at the
    layers `roots` is removed ('' when it runs)."""
    trial = model_copy(model)
    modules = dict(trial.named_modules())
    try:
        graph = _dependency_graph(trial, example_input, cut_shuffles)
        with _torch_pruning():
            for root in roots:
                layer = modules[root]
                graph.get_pruning_group(layer, graph.get_pruner_of_module(layer).prune_out_channels, idxs=[0]).prune()
        with torch.no_grad():
            trial(example_input)
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return ""


_BROKEN: dict[tuple, dict[str, str]] = {}
"""_breaking's answers by model structure, input shape and roots: pruning one model at several criteria and rates
asks the same question each time, and each trial traces the model again."""


def _fingerprint(model: nn.Module, example_input: torch.Tensor, roots: list[str], cut_shuffles: bool) -> tuple:
    layers = tuple((name, type(m).__qualname__, tuple(tuple(t.shape) for t in m.state_dict().values()))
                   for name, m in model.named_modules() if not list(m.children()))
    return layers, tuple(example_input.shape), tuple(roots), cut_shuffles


def _breaking(model: nn.Module, example_input: torch.Tensor, roots: list[str], cut_shuffles: bool) -> dict[str, str]:
    """Of the groups rooted at `roots`, those whose cut alone breaks the forward, with why (remembered per model
    structure, see _BROKEN)."""
    if not roots:
        return {}
    key = _fingerprint(model, example_input, roots, cut_shuffles)
    if key not in _BROKEN:
        if len(_BROKEN) >= 16:
            _BROKEN.pop(next(iter(_BROKEN)))
        _BROKEN[key] = _bisect(roots, lambda some: _removal_breaks(model, example_input, some, cut_shuffles))
    return dict(_BROKEN[key])


def _bisect(items: list[str], breaks: Callable[[list[str]], str]) -> dict[str, str]:
    """Of `items`, those for which `breaks([item])` gives a reason, with it: tried all at once and halved where that
    fails, so when none breaks it costs one trial, not one per item."""
    if not items:
        return {}
    why = breaks(items)
    if not why:
        return {}
    if len(items) == 1:
        return {items[0]: why}
    half = len(items) // 2
    return {**_bisect(items[:half], breaks), **_bisect(items[half:], breaks)}


def _group_of(graph: tp.DependencyGraph, module: nn.Module) -> object:
    """torch-pruning's group of all of `module`'s output channels, its walk bounded (GroupTooLarge); the graph's
    index mappings are taken as up to date (_root_groups computes them once)."""
    pruner = graph.get_pruner_of_module(module)
    with bounded_walk(mapped=True), _torch_pruning():
        return graph.get_pruning_group(module, pruner.prune_out_channels, list(range(pruner.get_out_channels(module))))


def _root_groups(graph: tp.DependencyGraph, ignored: list[nn.Module]) -> Iterator[tuple[nn.Module, object]]:
    """Each conv/linear layer not yet covered, as a root, with the group its output channels couple (or, when the
    group is too large to map or torch-pruning's walk fails on it, why); groups reaching an ignored layer's output
    channels are not yielded."""
    covered: set[nn.Module] = set()
    ignored_ids = {id(m) for m in ignored}
    with _torch_pruning():  # once for every walk: the model does not change while its groups are found
        index_mapping.update_index_mapping(graph)
    for module in list(graph.module2node):
        if id(module) in ignored_ids or module in covered or not isinstance(module, WEIGHT_LAYERS):
            continue
        pruner = graph.get_pruner_of_module(module)
        if pruner is None or pruner.get_out_channels(module) is None:
            continue
        try:
            group = _group_of(graph, module)
            # a layer whose channels each feed several of the root's (GhostNet's cat of x and dw(x)) is the root
            # instead: removing one of its channels then removes all the root channels it feeds, never half of them
            narrower = [item.dep.target.module for item in group if graph.is_out_channel_pruning_fn(item.dep.handler)
                        and isinstance(item.dep.target.module, WEIGHT_LAYERS)
                        and _out_channels(item.dep.target.module) < _out_channels(module)]
            if narrower:
                module = min(narrower, key=_out_channels)
                group = _group_of(graph, module)
        except GroupTooLarge as exc:
            covered.add(module)
            yield module, str(exc)
            continue
        except (IndexError, KeyError, TypeError, ValueError) as exc:  # torch-pruning's own index mappings fail
            covered.add(module)
            yield module, (f"torch-pruning cannot map its channels through the layers they reach "
                           f"({type(exc).__name__} in its walk, e.g. into a GRU it has no pruner for)")
            continue
        outputs = [item.dep.target.module for item in group if graph.is_out_channel_pruning_fn(item.dep.handler)]
        covered.update(outputs)
        if not any(id(m) in ignored_ids for m in outputs):
            yield module, group


class ChannelGraph:
    """The dependency graph of a model and its prunable groups: channel groups, and the heads of each attention layer
    (see compress.heads); the output layers are left alone by default."""

    def __init__(self, model: nn.Module, example_input: torch.Tensor, ignore: list[str] | tuple[str, ...] = (),
                 ignore_output_layer: bool = True) -> None:
        self.model = model
        self.example_input = example_input = example_input.to(device_of(model))
        names = {m: n for n, m in model.named_modules()}
        self._order = {n: i for i, (n, _) in enumerate(model.named_modules())}
        modules = dict(model.named_modules())
        unknown = [n for n in ignore if n not in modules]
        if unknown:
            raise PruningError(f"layers to ignore not found in the model: {', '.join(unknown)}",
                               "use names from model.named_modules()")
        ignored_names = set(ignore) | (set(output_layers(model, example_input)) if ignore_output_layer else set())
        heads, heads_whole = head_groups(model, example_input, ignored_names)
        # head projections are cut a whole head at a time, never channel by channel
        ignored = [modules[n] for n in sorted(ignored_names | set(head_projections(model)))]
        with evaluating(model):
            # torch-pruning either fails on a channel shuffle or, worse, prunes through it into a broken network:
            # the graph is traced with the shuffles cut, and the widths they fix are left whole
            shuffles: Shuffles = find_shuffles(model, example_input)
            try:
                self.graph = _dependency_graph(model, example_input, bool(shuffles))
            except Exception as exc:
                raise PruningError(f"torch-pruning cannot trace this model: {type(exc).__name__}: {exc}",
                                   "compress it by quantization alone (edgewise quantize), or simplify the forward "
                                   "(no data-dependent control flow) or prune a traceable part") from exc
        foreign = converted_from_onnx(model)
        candidates: list[tuple[ChannelGroup, bool]] = []
        self.groups: list[ChannelGroup | HeadGroup] = []
        self.skipped: dict[str, str] = dict(heads_whole)  # group -> why it is left whole
        for root, group in _root_groups(self.graph, ignored):
            if isinstance(group, str):
                self.skipped[names[root]] = group
                continue
            members, readers = [], []
            for item in group:
                dep, idxs = item.dep, item.idxs
                module = dep.target.module
                if not isinstance(module, WEIGHT_LAYERS):
                    continue
                if self.graph.is_out_channel_pruning_fn(dep.handler):
                    members.append((names[module], list(idxs), list(item.root_idxs)))
                elif self.graph.is_in_channel_pruning_fn(dep.handler):
                    readers.append((names[module], list(idxs), list(item.root_idxs)))
            if not members:
                continue
            members.sort(key=lambda m: self._order[m[0]])
            held = next(((n, why) for n, _, _ in members if (why := shuffles.holds(n))), None)
            if held is not None:
                self.skipped[members[0][0]] = held[1] if held[0] == members[0][0] else f"{held[0]}: {held[1]}"
                continue
            overflow = [n for n, idxs, _ in members if max(idxs) >= _out_channels(modules[n])]
            if overflow:
                # a split output (torch.chunk in YOLOv8's C2f) maps indices past the layer's channels
                self.skipped[members[0][0]] = (f"its channels reach {overflow[0]} through a split (torch.chunk or "
                                               "split) whose index mapping torch-pruning gets wrong")
                continue
            channels = len(group[0].idxs)
            blocks = max(_channel_blocks(item.dep.target.module) for item in group)
            if channels % blocks:
                raise PruningError(f"layer {members[0][0]} has {channels} channels in {blocks} groups",
                                   ignore_fix(members[0][0]))
            # parameters outside any layer (a ViT's class token and position embedding) are cut along with the
            # group, but the model's code may still expect the old width; so may the constants of ops converted
            # from ONNX: such groups are tried on a copy first
            untried = foreign or any(isinstance(item.dep.target.module, nn.Parameter) for item in group)
            candidates.append((ChannelGroup(members[0][0], root, channels, members, blocks, readers), untried))
        broken = _breaking(model, example_input, [names[g.root] for g, untried in candidates if untried],
                           bool(shuffles))
        for group, _ in candidates:
            why = broken.get(names[group.root])
            if why:
                self.skipped[group.name] = f"the model no longer runs without one of its channels ({why})"
            else:
                self.groups.append(group)
        self.groups.extend(heads)

    def _check_runs(self, groups: list[str]) -> None:
        try:
            with torch.no_grad(), evaluating(self.model):
                self.model(self.example_input)
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise PruningError(f"the network no longer runs after removing channels of {', '.join(groups)}: "
                               f"{type(exc).__name__}: {first}",
                               # which cut broke it is unknown: a few are all named, so one more run is enough
                               ignore_fix(*(groups if len(groups) <= 5 else groups[:1]))) from exc

    def group_scores(self, layer_scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per group, the mean of its member layers' channel scores (mapped through the group's index coupling)."""
        out = {}
        for g in self.groups:
            total = torch.zeros(g.channels, dtype=torch.float64)
            count = torch.zeros(g.channels, dtype=torch.float64)
            for name, idxs, root_idxs in g.members:
                if name in layer_scores:
                    total[root_idxs] += layer_scores[name].detach().to('cpu', torch.float64)[idxs]
                    count[root_idxs] += 1
            out[g.name] = total / count.clamp(min=1)
        return out

    def layer_channels(self, removal: dict[str, list[int]], inputs: bool = False) -> dict[str, list[int]]:
        """Per member layer of the groups in `removal` (group channel indices, by group), its own output channel
        indices that the removal takes; with `inputs`, per reader layer, its own input channel indices."""
        taken: dict[str, list[int]] = {}
        for group in self.groups:
            drop = set(removal.get(group.name, ()))
            for name, idxs, root_idxs in (group.readers if inputs else group.members) if drop else ():
                taken.setdefault(name, []).extend(i for i, r in zip(idxs, root_idxs, strict=True) if r in drop)
        return taken

    def remove(self, removal: dict[str, list[int]]) -> None:
        """Physically remove the given channel indices of each group (the model's tensors shrink in place)."""
        by_name = {g.name: g for g in self.groups}
        for name, idxs in removal.items():
            if not idxs:
                continue
            group = by_name[name]
            if isinstance(group, HeadGroup):
                group.remove(idxs)
                continue
            pruner = self.graph.get_pruner_of_module(group.root)
            try:
                with _torch_pruning():
                    plan = self.graph.get_pruning_group(group.root, pruner.prune_out_channels, idxs=sorted(idxs))
                if not self.graph.check_pruning_group(plan):
                    raise PruningError(f"removing {len(idxs)} channels of group {name} would empty a layer",
                                       "keep at least one channel per layer (min_channels)")
                plan.prune()
            except PruningError:
                raise
            except Exception as exc:
                raise PruningError(f"cannot remove channels of layer {name}: {type(exc).__name__}: {exc}",
                                   ignore_fix(name)) from exc
        self._check_runs([name for name, idxs in removal.items() if idxs])


def breaking_removals(model: nn.Module, example_input: torch.Tensor, ignore: tuple[str, ...],
                      removal: dict[str, list[int]]) -> dict[str, str]:
    """Of the groups in `removal` (channel indices per group of ChannelGraph(model, example_input, ignore)), those whose
    removal alone leaves a copy of `model` unable to run, with why: each trial cuts a fresh copy, so `model` is kept."""

    def breaks(groups: list[str]) -> str:
        trial = model_copy(model)
        try:
            ChannelGraph(trial, example_input, ignore).remove({g: removal[g] for g in groups})
        except PruningError as exc:
            return exc.problem
        return ""

    return _bisect([g for g, idxs in removal.items() if idxs], breaks)
