"""Attention heads as prunable units: find a model's multi-head attention layers, score a head by its value channels,
and remove whole heads physically (their query, key and value rows, the output projection's columns, the head count).

Two layouts are known: the kit's ExplicitAttention (separate q, k, v layers; torch's nn.MultiheadAttention is turned
into one before pruning) and the fused `qkv` layout of timm and most vision transformers (one `qkv` linear layer whose
output is [q | k | v], each heads x head_dim, a `proj` layer and a `num_heads` count). A layout whose code fixes the
head width some other way (torchvision's Swin derives it from the block's input width) is found by trying the removal
on a copy, and its heads are left whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from edgewise.compress.attention import ExplicitAttention
from edgewise.compress.copying import model_copy


def _linear(module: nn.Module, name: str) -> nn.Linear | None:
    child = getattr(module, name, None)
    return child if isinstance(child, nn.Linear) else None


def _layout(module: nn.Module) -> tuple[list[str], str, int] | None:
    """(the projections that produce per-head channels, the value layer, its first value channel), or None when the
    module is not a known multi-head attention."""
    heads = getattr(module, "num_heads", None)
    if not isinstance(heads, int) or heads < 2:
        return None
    if isinstance(module, ExplicitAttention):
        return ["q", "k", "v"], "v", 0
    qkv, proj = _linear(module, "qkv"), _linear(module, "proj")
    if qkv is None or proj is None or qkv.out_features != 3 * proj.in_features or proj.in_features % heads:
        return None
    return ["qkv"], "qkv", 2 * proj.in_features


def _inner_width(module: nn.Module) -> int:
    """Channels of all heads together (heads x head_dim) of a known layout."""
    return module.q.out_features if isinstance(module, ExplicitAttention) else module.proj.in_features


@dataclass
class HeadGroup:
    """The heads of one attention layer: `heads` units of `head_dim` channels each (the channels of the value
    projection, heads-major), removed a whole head at a time. `members` is the value layer and its channels, as in
    a ChannelGroup, so that the same criteria score both. `readers` stays empty: what a head's cut saves in the
    query, key and output projections is not estimated ahead (compress.budget measures it after the cut)."""

    name: str
    module: nn.Module
    heads: int
    head_dim: int
    members: list[tuple[str, list[int], list[int]]] = field(default_factory=list)
    readers: list[tuple[str, list[int], list[int]]] = field(default_factory=list)

    @property
    def channels(self) -> int:
        """Value channels of all heads."""
        return self.heads * self.head_dim

    @property
    def units(self) -> int:
        """How many units can be cut: heads."""
        return self.heads

    @property
    def width(self) -> int:
        """Channels one unit removes: a head's width."""
        return self.head_dim

    def unit_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """Per head, the mean score of its value channels."""
        return scores.reshape(self.heads, self.head_dim).mean(1)

    def channels_of(self, units: list[int]) -> list[int]:
        """The value channels of heads `units`."""
        return sorted(h * self.head_dim + j for h in units for j in range(self.head_dim))

    def remove(self, channels: list[int]) -> None:
        """Remove the heads whose channels are `channels` (whole heads, in the current numbering)."""
        heads = sorted({c // self.head_dim for c in channels})
        remove_heads(self.module, heads)
        self.heads -= len(heads)


def remove_heads(module: nn.Module, heads: list[int]) -> None:
    """Physically remove attention heads `heads` of `module` (a known layout, see `_layout`)."""
    n = module.num_heads
    inner = _inner_width(module)
    d = inner // n
    rows = [h * d + j for h in heads for j in range(d)]
    if isinstance(module, ExplicitAttention):
        for layer in (module.q, module.k, module.v):
            tp.prune_linear_out_channels(layer, rows)
        tp.prune_linear_in_channels(module.out_proj, rows)
    else:
        tp.prune_linear_out_channels(module.qkv, [part * inner + r for part in range(3) for r in rows])
        tp.prune_linear_in_channels(module.proj, rows)
        if _linear(module, "gate") is not None:
            tp.prune_linear_out_channels(module.gate, rows)
        if isinstance(getattr(module, "norm", None), nn.LayerNorm):
            tp.prune_layernorm_out_channels(module.norm, rows)
        table = getattr(module, "relative_position_bias_table", None)
        if isinstance(table, nn.Parameter) and table.shape[-1] == n:
            keep = [h for h in range(n) if h not in set(heads)]
            module.relative_position_bias_table = nn.Parameter(table.data[..., keep].clone(),
                                                               requires_grad=table.requires_grad)
        if isinstance(getattr(module, "attn_dim", None), int):
            module.attn_dim = (n - len(heads)) * d
    module.num_heads = n - len(heads)


def _runs(model: nn.Module, example_input: torch.Tensor) -> str:
    try:
        with torch.no_grad():
            model.eval()(example_input)
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return ""


def head_groups(model: nn.Module, example_input: torch.Tensor, ignored: set[str]
                ) -> tuple[list[HeadGroup], dict[str, str]]:
    """The attention layers of `model` whose heads can be removed, and those left whole with the reason.

    An attention layer is left out when it, or one of its projections, is in `ignored`. Removing one head of every
    candidate is first tried on a copy; when that copy no longer runs, each layer is tried alone.
    """
    found = {}
    for name, module in model.named_modules():
        layout = _layout(module)
        if layout is None:
            continue
        projections, _, _ = layout
        if name in ignored or any(f"{name}.{p}" in ignored for p in projections):
            continue
        found[name] = module
    if not found:
        return [], {}
    skipped: dict[str, str] = {}

    def breaks(names: list[str]) -> str:
        trial = model_copy(model)
        modules = dict(trial.named_modules())
        for n in names:
            remove_heads(modules[n], [0])
        return _runs(trial, example_input)

    if breaks(list(found)):
        for name in list(found):
            why = breaks([name])
            if why:
                skipped[name] = f"its heads cannot be removed: the model no longer runs with one head fewer ({why})"
                del found[name]
    groups = []
    for name, module in found.items():
        _, value, first = _layout(module)
        n = module.num_heads
        d = _inner_width(module) // n
        idxs = list(range(first, first + n * d))
        groups.append(HeadGroup(name, module, n, d, [(f"{name}.{value}", idxs, list(range(n * d)))]))
    return groups, skipped


def head_projections(model: nn.Module) -> list[str]:
    """Names of the layers whose output channels belong to attention heads (q, k, v, qkv): they are cut by head,
    never channel by channel."""
    names = []
    for name, module in model.named_modules():
        layout = _layout(module)
        if layout is not None:
            names.extend(f"{name}.{p}" for p in layout[0])
    return names
