"""Repair after a cut, without labels: layers that read pruned channels refitted to the unpruned network's outputs by
least squares, and batch-norm statistics re-estimated; each part kept only where it lowers the held-out error.

Reconstruction (ThiNet, Luo et al. 2017; channel pruning, He et al. 2017): a layer whose input lost channels gets the
weights and bias that map its remaining inputs, as the pruned network now computes them, closest to what the layer
gave in the unpruned network (its kept output channels), ridge-regularised. Layers are refitted in the order the
network runs them, so each fit also absorbs what the layers before it could not undo. A convolution is fitted on its
unfolded input patches at a random sample of positions; a grouped convolution one group at a time.

Batch-norm statistics are re-estimated on the calibration inputs (a cumulative average), since removing channels
shifts every later layer's activations (EagleEye, Li et al. 2020).

Both are judged on calibration inputs the fits did not read: the relative squared error of every output tensor
against the unpruned network's. A part that does not lower it is undone and reported as such.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgewise.base.device import device_of
from edgewise.compress.batching import samples_per_pass
from edgewise.compress.modes import evaluating
from edgewise.compress.outputs import tensors_of
from edgewise.compress.reference import held_out_split
from edgewise.compress.taps import hooked_pass

REFITTED = (nn.Conv1d, nn.Conv2d, nn.Linear)
"""Layers reconstruction refits; transposed and 3-D convolutions keep their weights."""


@dataclass(frozen=True)
class Repair:
    """What repair does: `reconstruct` the layers that read pruned channels (ridge `ridge` x the mean input energy,
    at most `rows` input rows per layer and pass), re-estimate `batchnorm` statistics, judging both on a random
    `held_out` share of the calibration inputs; `batch` samples run at a time where the fit does not need them
    together."""

    reconstruct: bool = True
    batchnorm: bool = True
    ridge: float = 1e-3
    rows: int = 4096
    held_out: float = 0.25
    batch: int = 16

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts switched on, in the order they run."""
        return tuple(p for p, on in (("reconstruct", self.reconstruct), ("batchnorm", self.batchnorm)) if on)


REPAIR = Repair()
"""The default: both parts, each kept where it helps."""

def named_repair(name: str) -> Repair | None:
    """The Repair a name describes: all (both parts), reconstruct, batchnorm, or none (None: off)."""
    if name == "none":
        return None
    return Repair(reconstruct=name in ("all", "reconstruct"), batchnorm=name in ("all", "batchnorm"))


@dataclass
class RepairReport:
    """The held-out output error (relative squared error against the unpruned network) before repair, and per part
    the error it reached, whether it was kept, and the layers it changed (a part with nothing to change is left out)."""

    error_before: float
    parts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def error_after(self) -> float:
        """The held-out error of the repaired network (the kept parts)."""
        kept = [p["error"] for p in self.parts if p["kept"]]
        return kept[-1] if kept else self.error_before

    def to_json(self) -> dict[str, Any]:
        """JSON-able record."""
        return {**asdict(self), "error_after": self.error_after}


def _calls(model: nn.Module, x: torch.Tensor) -> list[str]:
    """The refittable layers in the order one forward pass calls them, each named once per call."""
    order: list[str] = []
    names = {m: n for n, m in model.named_modules() if isinstance(m, REFITTED)}
    hooked_pass(model, x, names, lambda m, _a, _out: order.append(names[m]))  # a leaf's hook runs as it is called
    return order


def _in_width(module: nn.Module) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.in_channels


def _out_width(module: nn.Module) -> int:
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


def _grid(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """A layer's output as (positions, channels): a linear layer's rows, a convolution's every (sample, place)."""
    return out.reshape(-1, out.shape[-1]) if isinstance(module, nn.Linear) else out.movedim(1, -1).reshape(
        -1, out.shape[1])


def _patches(module: nn.Module, inputs: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(groups, positions, features) rows of what the layer reads at the output `positions` (flat indices into
    _grid's rows): a linear layer's input rows, a convolution's input patches, gathered there alone (unfolding a
    whole batch of large images would take gigabytes)."""
    if isinstance(module, nn.Linear):
        return inputs.reshape(-1, inputs.shape[-1])[positions][None]
    conv1d = isinstance(module, nn.Conv1d)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = ((1 - int(pad), v[0]) if conv1d else tuple(v) for v, pad in (
        (module.kernel_size, False), (module.stride, False), (module.padding, True), (module.dilation, False)))
    x = F.pad(inputs.unsqueeze(2) if conv1d else inputs, (pw, pw, ph, ph))
    ho, wo = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1, (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    n, place = positions // (ho * wo), positions % (ho * wo)
    top, left = (place // wo) * sh, (place % wo) * sw
    taps = torch.stack([x[n, :, top + i * dh, left + j * dw] for i in range(kh) for j in range(kw)], -1)
    return taps.reshape(len(positions), module.groups, -1).transpose(0, 1)


def _with_bias(module: nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """`rows` in double, with a ones column where the layer has a bias to fit."""
    rows = rows.double()
    return rows if module.bias is None else torch.cat([rows, torch.ones_like(rows[..., :1])], -1)


def _solve(gram: torch.Tensor, cross: torch.Tensor, ridge: float, bias: bool) -> torch.Tensor:
    """Ridge least squares per group: (X^T X + ridge x mean diag I) W = X^T Y, a bias (the last row) unregularised."""
    features = gram.shape[-1] - int(bias)
    scale = gram.diagonal(dim1=-2, dim2=-1)[..., :features].mean(-1).clamp_min(1e-12)
    damp = torch.zeros_like(gram)
    damp.diagonal(dim1=-2, dim2=-1)[..., :features] = (ridge * scale)[..., None]
    return torch.linalg.lstsq(gram + damp, cross).solution


def _write(module: nn.Module, solution: torch.Tensor) -> None:
    """Write the (groups, features, outputs per group) solution as the layer's weight, and its bias row where the
    layer has one (a layer without keeps none: the batch norm after it, re-estimated, takes the mean shift)."""
    weights = solution if module.bias is None else solution[:, :-1]
    like = module.weight
    dense = {"device": like.device, "dtype": like.dtype, "memory_format": torch.contiguous_format}
    module.weight.data = weights.transpose(1, 2).reshape(like.shape).to(**dense, copy=True)
    if module.bias is not None:
        module.bias.data = solution[:, -1].reshape(-1).to(**dense, copy=True)


def reconstructable(original: nn.Module, pruned: nn.Module, kept: dict[str, list[int]]) -> list[str]:
    """Layers of `pruned` that read fewer channels than in `original` and can be refitted: a conv or linear layer
    with zero padding whose kept output channels are known (`kept`: the original indices, by layer, of every one it
    kept) where it lost some."""
    source = dict(original.named_modules())
    names = []
    for name, module in pruned.named_modules():
        before = source.get(name)
        if not isinstance(module, REFITTED) or type(before) is not type(module):
            continue
        if getattr(module, "padding_mode", "zeros") != "zeros" or isinstance(getattr(module, "padding", 0), str):
            continue
        if _in_width(module) == _in_width(before):
            continue
        if _out_width(module) != _out_width(before) and len(kept.get(name, ())) != _out_width(module):
            continue  # which of its outputs it kept is unknown (a fused projection of heads cut whole)
        names.append(name)
    return names


def output_error(original: nn.Module, pruned: nn.Module, x: torch.Tensor, batch: int = 16) -> float:
    """Relative squared error of every output tensor of `pruned` against `original`'s on `x`, `batch` samples at a
    time or fewer (compress.batching.samples_per_pass)."""
    num = den = 0.0
    batch = min(batch, samples_per_pass(original, x))
    with torch.no_grad():
        for chunk in x.split(batch):
            for a, b in zip(tensors_of(original(chunk)), tensors_of(pruned(chunk)), strict=True):
                if a.is_floating_point():
                    num += float((b.double() - a.double()).pow(2).sum())
                    den += float(a.double().pow(2).sum())
    return num / max(den, 1e-30)


def _reconstruct(original: nn.Module, pruned: nn.Module, kept: dict[str, list[int]], x: torch.Tensor,
                 settings: Repair) -> list[str]:
    """Refit every reconstructable layer called once per pass, in one pass of each network over the fit inputs: the
    unpruned one records each layer's outputs at a sample of positions, and the pruned one refits each layer as the
    pass reaches it, from its input there, so that the layers after it read the refitted output.

    A model that runs its samples in slices of a fixed batch (a converted ONNX graph with `fixed_batch`) calls each
    layer once per slice: its layers gather every slice's rows and are all refitted after the pass, each from the
    inputs the cut left it. Where one pass over all the fit inputs would hold more than
    compress.batching.PASS_BUDGET (PP-OCRv4's recogniser holds 200 MB a line), they run in chunks that fit, and each
    layer is refitted in every chunk's pass from the statistics of all the chunks so far: sequential within a pass,
    and in the end fitted on every input. On PP-OCRv4's recogniser at 20% fewer MACs (l1) the held-out error was
    0.15 refitted from the 5 lines that fit at once, 0.45 from all 150 refitted after the passes, 0.027 so."""
    wanted = set(reconstructable(original, pruned, kept))
    order = _calls(pruned, x[:1])
    once = [n for n in dict.fromkeys(order) if n in wanted and order.count(n) == 1]  # a shared layer keeps its weights
    if not once:
        return []
    # the unpruned pass holds its activations and two copies of a layer's output at a time (the reshaped grid, and
    # the padded input of the refit)
    chunks = x.split(max(2, samples_per_pass(original, x, copies=2)))
    sliced = getattr(pruned, "fixed_batch", None) is not None
    generator = torch.Generator().manual_seed(0)
    calls: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {n: [] for n in once}  # (positions, targets) per call
    sums: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, _args: tuple, out: torch.Tensor) -> None:
            grid = _grid(module, out.detach())
            where = torch.randperm(len(grid), generator=generator)[:settings.rows].to(grid.device)
            target = grid[where]
            refitted = pruned.get_submodule(name)
            if _out_width(refitted) != _out_width(module):
                target = target[:, torch.tensor(kept[name], device=target.device)]
            groups = getattr(refitted, "groups", 1)  # a depthwise layer that lost channels lost groups with them
            calls[name].append((where, target.reshape(len(target), groups, -1).transpose(0, 1)))
        return hook

    def write(module: nn.Module, name: str) -> None:
        gram, cross = sums[name]
        _write(module, _solve(gram, cross, settings.ridge, module.bias is not None))

    def refit(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple) -> None:
            where, target = calls[name].pop(0)
            rows = _with_bias(module, _patches(module, args[0].detach(), where))
            gram, cross = rows.transpose(1, 2) @ rows, rows.transpose(1, 2) @ target.double()
            sums[name] = (gram, cross) if name not in sums else (sums[name][0] + gram, sums[name][1] + cross)
            if not sliced:
                write(module, name)
        return hook

    for batch in chunks:
        for model, hooks in ((original, {n: original.get_submodule(n).register_forward_hook(record(n)) for n in once}),
                             (pruned, {n: pruned.get_submodule(n).register_forward_pre_hook(refit(n)) for n in once})):
            try:
                with torch.no_grad():
                    model(batch)
            finally:
                for handle in hooks.values():
                    handle.remove()
    if sliced:
        for name in sums:
            write(pruned.get_submodule(name), name)
    return once


def _batchnorm(pruned: nn.Module, x: torch.Tensor, settings: Repair) -> list[str]:
    norms = {n: m for n, m in pruned.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats}
    momenta = {n: m.momentum for n, m in norms.items()}
    try:
        for m in norms.values():
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over every batch, not the last few
            m.train()
        with torch.no_grad():
            for chunk in x.split(settings.batch):
                if len(chunk) > 1:
                    pruned(chunk)
    finally:
        for n, m in norms.items():
            m.momentum = momenta[n]
            m.eval()
    return list(norms)


def repair_cut(original: nn.Module, pruned: nn.Module, x: torch.Tensor, kept: dict[str, list[int]],
           settings: Repair | None = None) -> RepairReport:
    """Repair `pruned` in place towards `original` (the network before the cut) on calibration inputs `x`.

    `kept` gives, per layer that lost output channels, the original indices it kept. The parts `settings` switches
    on run in turn (reconstruction, then batch-norm statistics); each is fitted on a random (1 - held_out) of `x`
    and kept only where it lowers the output error on the rest (relative squared error of every output tensor against
    `original`). Returns the errors and what each part changed.
    """
    settings = settings or Repair()
    x = x.to(device_of(pruned))
    fit, check = (x[i.to(x.device)] for i in held_out_split(len(x), settings.held_out))
    with evaluating(original), evaluating(pruned):
        report = RepairReport(output_error(original, pruned, check, settings.batch))
        if len(x) < 2:
            return report
        for part in settings.parts:
            before = copy.deepcopy(pruned.state_dict())
            changed = (_reconstruct(original, pruned, kept, fit, settings) if part == "reconstruct"
                       else _batchnorm(pruned, fit, settings))
            if not changed:  # nothing of the kind to repair (no batch norm, no refittable reader): not a part
                continue
            error = output_error(original, pruned, check, settings.batch)
            kept_part = error < report.error_after
            if not kept_part:
                pruned.load_state_dict(before)
            report.parts.append({"part": part, "error": error, "kept": kept_part, "layers": changed})
    return report

