"""Emulated accelerators as plug-ins: a target profile of kind `emulated` names its cost model in this registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgewise.base.errors import UserError
from edgewise.runtime.costs import model_costs
from edgewise.targets import load_target, target_names

# cost model name (a profile's `emulator` field) -> costs(mlp, profile, batch): per-layer and total figures
EMULATORS: dict[str, Callable[[Any, dict[str, Any], int], dict[str, Any]]] = {
    "fantastic4": model_costs,
}


def emulated_targets() -> list[str]:
    """The shipped targets that are emulated accelerators (their profiles name a cost model)."""
    return target_names(kind="emulated")


def emulated_costs(mlp: Any, target: str, batch: int = 1) -> dict[str, Any]:
    """Per-layer and total emulated costs of `batch` inferences of the integer network `mlp` on `target`."""
    profile = load_target(target)
    if profile["kind"] != "emulated":
        raise UserError(f"target {target} is not an emulated accelerator (it is a {profile['kind']})",
                        f"use one of {', '.join(emulated_targets())}")
    if profile.get("emulator") not in EMULATORS:
        raise UserError(f"target {target} names the cost model {profile.get('emulator')!r}, which is not registered",
                        f"use one of {', '.join(EMULATORS)} in its profile")
    return EMULATORS[profile["emulator"]](mlp, profile, batch)
