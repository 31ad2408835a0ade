"""Deep copies of models whose forward leaves computed tensors on their modules (caches), which deepcopy refuses."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import TypeVar

import torch
from torch import nn

T = TypeVar("T")


def _computed_tensors(module: nn.Module) -> Iterator[torch.Tensor]:
    """Tensors with a grad_fn held in a module's attributes, directly or in a dict, list or tuple attribute."""
    for m in module.modules():
        for value in vars(m).values():
            items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) \
                else (value,)
            for item in items:
                if isinstance(item, torch.Tensor) and item.grad_fn is not None:
                    yield item


def model_copy(obj: T) -> T:
    """copy.deepcopy of `obj` (a module, or a tuple holding modules and plain data), each tensor a forward computed
    and left on a module copied detached. deepcopy refuses tensors that are not graph leaves, and some models keep
    such a cache after a forward with gradients (timm's LeViT and EfficientViT their attention biases in eval mode:
    pruning traces them so)."""
    modules = [obj] if isinstance(obj, nn.Module) else [o for o in obj if isinstance(o, nn.Module)]
    memo = {id(t): t.detach().clone() for m in modules for t in _computed_tensors(m)}
    return copy.deepcopy(obj, memo)
