"""The torch device the kit computes on: the user's choice (auto, cpu, cuda, cuda:N) checked against this machine,
and the device a model lives on, which every compress and training function computes on.

torch is imported where a device is resolved, not with the module: a recipe's device choice is
checked (`check_device_choice`) without it.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import TYPE_CHECKING

from edgewise.board.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
_DEVICE = re.compile(r"auto|cpu|cuda(?::(\d+))?")


def check_device_choice(choice: str) -> str:
    """`choice` when it is a device name the kit takes (whether this machine has it is `resolve_device`'s question),
    else a ValueError listing the names."""
    if _DEVICE.fullmatch(choice) is None:
        raise ValueError(f"unknown device {choice!r}; expected one of {', '.join(DEVICE_CHOICES)}")
    return choice


def resolve_device(choice: str = "auto") -> torch.device:
    """The device `choice` names: `auto` is the first CUDA device when torch sees one, else the CPU; `cuda` or
    `cuda:N` on a machine without that device is a user error saying why (a CPU-only torch, no device found)."""
    import torch

    if choice == "auto":
        # an explicit index: tensors report cuda:N, and a device compared with theirs must say N too
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    if choice == "cpu":
        return torch.device("cpu")
    try:
        check_device_choice(choice)
    except ValueError as exc:
        raise UserError(str(exc), "use auto (the GPU when there is one), cpu, cuda or cuda:N") from None
    if not torch.cuda.is_available():
        why = ("this torch is built for the CPU only" if torch.version.cuda is None
               else "torch finds no CUDA device (check the driver and CUDA_VISIBLE_DEVICES)")
        raise UserError(f"device {choice} was asked for, but {why}",
                        "use device auto (the GPU when there is one) or cpu")
    count = torch.cuda.device_count()
    number = _DEVICE.fullmatch(choice).group(1)
    index = torch.cuda.current_device() if number is None else int(number)
    if index >= count:
        raise UserError(f"device {choice} was asked for, but this machine has {count} CUDA device(s)",
                        f"use cuda:0 to cuda:{count - 1}, or auto")
    return torch.device("cuda", index)


def device_of(module: nn.Module) -> torch.device:
    """Where `module` computes: the device of its first parameter or buffer (the CPU for a module without any)."""
    import torch

    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return torch.device("cpu")


def on_device(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` itself when it already lives on `device`, else a copy moved there (the original is not changed)."""
    if device_of(module) == device:
        return module
    return copy.deepcopy(module).to(device)
