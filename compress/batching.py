"""How many samples one forward pass may take within a memory budget, measured on a one-sample probe.

A fixed batch size is wrong both ways: 256 samples of a digits MLP are a few megabytes, 40 lines
of PP-OCRv4's recogniser converted from ONNX are 8 GB (its pass holds every intermediate, 200 MB
a line, while its largest single tensor is 1 MB). So passes that run many samples at once size
their batch from what one sample's pass holds.
"""

from __future__ import annotations

import torch
from torch import nn

from edgewise.base.device import device_of
from edgewise.compress.outputs import tensors_of
from edgewise.compress.taps import hooked_pass

PASS_BUDGET = 1 << 30
"""Bytes of activations one forward pass may hold (1 GiB): a batch is as many samples as fit."""


def pass_bytes(model: nn.Module, sample: torch.Tensor) -> tuple[int, int]:
    """What a forward pass of `model` holds per sample of `sample` (one sample, batch axis first): the bytes of
    every leaf module's outputs summed (what a pass holds where nothing is freed before its end, as a graph
    converted from ONNX keeps its intermediates) and the largest of them."""
    total, largest = [0], [0]

    def seen(_m: nn.Module, _a: tuple, out: object) -> None:
        for t in tensors_of(out):
            size = t.numel() * t.element_size()
            total[0] += size
            largest[0] = max(largest[0], size)

    hooked_pass(model, sample, (m for m in model.modules() if not list(m.children())), seen)
    return total[0], largest[0]


def samples_per_pass(model: nn.Module, x: torch.Tensor, budget: int | None = None, copies: int = 0) -> int:
    """How many of the samples `x` one forward pass of `model` can take within `budget` bytes (default PASS_BUDGET;
    at least 1, at most all of them), from a one-sample probe on the model's device; `copies` counts the per-sample
    copies of the largest activation that the caller's hooks make besides."""
    if len(x) < 2:  # nothing to decide: no probe
        return max(1, len(x))
    total, largest = pass_bytes(model, x[:1].to(device_of(model)))
    budget = PASS_BUDGET if budget is None else budget
    return max(1, min(len(x), budget // max(1, total + copies * largest)))
