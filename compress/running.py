"""Which modules are running at this moment: a stack kept by global forward hooks, for code that watches a forward
from outside (a TorchFunctionMode) and must know whose forward an operation belongs to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook


@contextmanager
def running_modules() -> Iterator[list[nn.Module]]:
    """Within the block, the list holds the modules whose forward is under way, innermost last."""
    stack: list[nn.Module] = []

    def enter(module: nn.Module, args: tuple) -> None:
        stack.append(module)

    def leave(module: nn.Module, args: tuple, out: object) -> None:
        stack.pop()

    hooks = [register_module_forward_pre_hook(enter), register_module_forward_hook(leave)]
    try:
        yield stack
    finally:
        for hook in hooks:
            hook.remove()
