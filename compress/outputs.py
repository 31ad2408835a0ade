"""The output a model is scored, traced and checked by: a tensor, or the one picked from the dict, tuple or list it
returns (torchvision segmentation's {'out', 'aux'}, detectors' tuples)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from edgewise.board.errors import UserError

OutputKey = str | int | Callable[[Any], torch.Tensor] | None
"""Which output scores: a dict key, a tuple/list index, a function of the output, or None (the default pick)."""


def tensors_of(out: Any) -> list[torch.Tensor]:
    """Every tensor in a model's output, in the order ONNX export flattens them (dicts by insertion, sequences in
    order, nested)."""
    if isinstance(out, torch.Tensor):
        return [out]
    values = out.values() if isinstance(out, dict) else out if isinstance(out, list | tuple) else ()
    return [t for value in values for t in tensors_of(value)]


def pick(out: Any, key: OutputKey = None) -> torch.Tensor:
    """The scoring tensor of a model's output: `out` itself when it is a tensor; by default a dict's 'out' (else its
    first tensor) and a sequence's first tensor; else what `key` names."""
    if callable(key):
        return key(out)
    if key is not None:
        try:
            chosen = out[key]
        except (KeyError, IndexError, TypeError):
            keys = list(out) if isinstance(out, dict) else list(range(len(out))) if isinstance(out, list | tuple) \
                else []
            raise UserError(f"the model's output has no {key!r}", f"name one of {keys} as the output to score"
                            ) from None
        return pick(chosen)
    if isinstance(out, dict) and isinstance(out.get("out"), torch.Tensor):
        return out["out"]
    found = tensors_of(out)
    if not found:
        raise UserError(f"the model returns {type(out).__name__} with no tensor in it",
                        "name the output to score (output=...) or return a tensor")
    return found[0]


def shapes(out: Any) -> Any:
    """The output's structure with each tensor replaced by its shape (tuple): what pruning must leave unchanged."""
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, dict):
        return {k: shapes(v) for k, v in out.items()}
    if isinstance(out, list | tuple):
        return [shapes(v) for v in out]
    return type(out).__name__


@contextmanager
def scored_output(model: nn.Module, key: OutputKey = None) -> Iterator[nn.Module]:
    """Within the block `model` returns its scoring tensor (`pick`): tracing, criteria, checks and export see one
    tensor, and layer names stay the model's own (a forward hook on the model replaces its output)."""
    handle = model.register_forward_hook(lambda module, args, out: pick(out, key))
    try:
        yield model
    finally:
        handle.remove()


SQUASHES = (nn.Sigmoid, nn.Softmax)
"""Final activations whose input, not output, is scored: where they saturate (a text detector's map at exactly 1.0,
a recogniser's confident characters) their gradient is 0 in float32, and relevance, gradients and losses vanish."""
_CONVERTED_SQUASHES = ("OnnxSoftmaxV1V11",)  # onnx2torch's (Log)Softmax of opsets 1 to 11 (a module of its own)


def _squashes(module: nn.Module) -> bool:
    """Whether `module` is a Sigmoid or Softmax (not a log-softmax, whose gradient does not vanish)."""
    converted = type(module).__name__ in _CONVERTED_SQUASHES and not getattr(module, "is_log", False)
    return isinstance(module, SQUASHES) or converted


def final_squash(model: nn.Module, example: torch.Tensor, key: OutputKey = None) -> str | None:
    """The name of the Sigmoid or Softmax module whose output the scoring tensor is (or a view of), or None: a model
    that ends in probabilities, as ONNX files often do."""
    found: dict[int, str] = {}

    def record(name: str):
        def hook(module: nn.Module, args: tuple, out: object) -> None:
            if isinstance(out, torch.Tensor):
                found[out.untyped_storage().data_ptr()] = name
        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if _squashes(m)]
    if not hooks:
        return None
    try:
        with torch.no_grad():
            scored = pick(model(example), key)
    finally:
        for h in hooks:
            h.remove()
    return found.get(scored.untyped_storage().data_ptr())


@contextmanager
def scoring(model: nn.Module, example: torch.Tensor, key: OutputKey = None) -> Iterator[nn.Module]:
    """Within the block `model` returns the tensor the criteria score: its scoring tensor (`scored_output`), taken
    before a final Sigmoid or Softmax (`final_squash`), so criteria see logits as they do on a classifier's head."""
    squash = final_squash(model, example, key)
    handle = model.get_submodule(squash).register_forward_hook(lambda module, args, out: args[0]) if squash else None
    try:
        with scored_output(model, key):
            yield model
    finally:
        if handle is not None:
            handle.remove()
