"""What the Python API checks of what a user passes (a model, reference samples, a bit width, records) before any
work, with the command line's words: the commands reach the same functions, so both refuse alike."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from edgewise.base.device import device_of
from edgewise.base.records import QuantizedLayer
from edgewise.board.errors import UserError
from edgewise.compress.outputs import OutputKey, pick
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.tasks import CLASS_TASKS

LOADING_FIX = ("the Python API takes a loaded torch module: load a file with edgewise.core.modelio.load_model(path) "
               "(or torch.load), or give the file to the command (edgewise prune FILE ...)")


def check_module(model: Any, role: str = "model") -> nn.Module:
    """`model` when it is a torch module whose weights hold values; a path, a tuple or a module on the meta device
    (weights without data) is a UserError naming what it is and how to load one."""
    if not isinstance(model, nn.Module):
        raise UserError(f"the {role} is {type(model).__name__} {shown(model)}, not a torch.nn.Module", LOADING_FIX)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        raise UserError(f"the {role}'s weights are on the meta device: they have shapes but no values",
                        "load its weights first (model.to_empty(device='cpu'), then load_state_dict)")
    return model


def shown(value: Any, width: int = 60) -> str:
    """`value`'s repr as one line of at most `width` characters, for an error message."""
    text = " ".join(repr(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def check_bits(bits: Any) -> int:
    """`bits` when it is a whole bit width from 2 to 8; 4.5, True or 9 is a UserError."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 8:
        raise UserError(f"bit width must be a whole number within 2..8, got {bits!r}", "use e.g. 4")
    return int(bits)


def check_finite(value: Any, name: str, low: float, high: float, fix: str) -> float:
    """`value` as a float when it is a real number within [low, high]; NaN, infinity or one outside is a UserError
    naming the setting (`name`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise UserError(f"{name} must be a number within {low:g}..{high:g}, got {value!r}", fix)
    return float(value)


def check_reference(ref: Any) -> ReferenceSamples:
    """`ref` when it is ReferenceSamples whose inputs are finite; arrays given bare, or NaN and infinity in the
    inputs (which every score would silently carry), are a UserError."""
    if not isinstance(ref, ReferenceSamples):
        raise UserError(f"reference samples must be edgewise.ReferenceSamples, got {type(ref).__name__}",
                        "wrap the arrays: ew.ReferenceSamples(torch.as_tensor(x), torch.as_tensor(y))")
    if ref.x.is_floating_point():
        bad = (~torch.isfinite(ref.x)).reshape(len(ref.x), -1).any(1)
        if bad.any():
            raise UserError(f"{int(bad.sum())} of {len(ref.x)} reference inputs hold NaN or infinite values",
                            "clean those samples or leave them out")
    return ref


def _model_dtype(model: nn.Module) -> torch.dtype | None:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def run_on_samples(model: nn.Module, ref: ReferenceSamples, output: OutputKey = None, count: int = 2) -> Any:
    """The model's output on the first `count` reference inputs (no gradients), after checking that the inputs'
    dtype is the one the model computes in and that class labels lie within the classes the output scores; a model
    that does not run on the inputs (a wrong size, a wrong dtype) is a UserError quoting torch's reason."""
    example = ref.x[:count].to(device_of(model))
    dtype = _model_dtype(model)
    if example.is_floating_point() and dtype is not None and example.dtype != dtype:
        raise UserError(f"the reference inputs are {str(ref.x.dtype).removeprefix('torch.')} but the model computes "
                        f"in {str(dtype).removeprefix('torch.')}",
                        f"convert them: ReferenceSamples(x.to(torch.{str(dtype).removeprefix('torch.')}), y)")
    out = forward(model, example, "the reference inputs")
    _check_labels(ref, pick(out, output))
    return out


def forward(model: nn.Module, x: torch.Tensor, what: str = "the example input") -> Any:
    """`model(x)` without gradients; a model that does not run on `x` (a wrong size or dtype) is a UserError naming
    `what` x is, its shape and dtype, and torch's reason."""
    try:
        with torch.no_grad():
            return model(x)
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the model does not run on {what} (shape {tuple(x.shape[1:])} per sample, "
                        f"{str(x.dtype).removeprefix('torch.')}): {reason}",
                        "give inputs shaped and typed as the model takes them") from None


def _check_labels(ref: ReferenceSamples, scores: torch.Tensor) -> None:
    if ref.task not in CLASS_TASKS or scores.dim() < 2 or len(ref.y) == 0:
        return
    classes = scores.shape[-1] if ref.task == "sequence" else scores.shape[1]
    low, high = int(ref.y.min()), int(ref.y.max())
    if low < 0 or high >= classes:
        raise UserError(f"the labels run from {low} to {high}, but the model scores {classes} classes",
                        f"give labels 0 to {classes - 1} (the index of the model's output for each class)")


def check_records(records: Any, model: nn.Module | None = None) -> dict[str, QuantizedLayer]:
    """`records` when it is a non-empty dict of QuantizedLayer by layer name (what quantize returns), and, with
    `model`, every record names a weight of that model; otherwise a UserError naming what was given."""
    if not isinstance(records, dict) or not records:
        raise UserError(f"records must be a non-empty dict of QuantizedLayer by layer name, got {shown(records)}",
                        "pass the records that quantize returned (QuantizedModel.records)")
    wrong = next((k for k, v in records.items() if not isinstance(v, QuantizedLayer)), None)
    if wrong is not None:
        raise UserError(f"record {wrong!r} is {type(records[wrong]).__name__}, not a QuantizedLayer",
                        "pass the records that quantize returned (QuantizedModel.records)")
    if model is not None:
        state = model.state_dict()
        foreign = [n for n, r in records.items() if r.weight_key not in state]
        if foreign:
            raise UserError(f"the records are of another model: {len(foreign)} of their {len(records)} layers "
                            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}) are not in this one",
                            "give the records `edgewise quantize` wrote beside this model (its .npz)")
    return records
