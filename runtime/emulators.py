"""Emulated accelerators as plug-ins: a target profile of kind `emulated` names its cost model in this registry.

A cost model is costs(mlp, profile, batch) -> per-layer and total figures; `register_emulator`
adds one, and other packages add theirs as entry points of the group `edgewise.emulators`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgewise.base.registry import Registry, registrar
from edgewise.board.errors import UserError
from edgewise.targets import load_target, target_names

EMULATORS: Registry[Callable[[Any, dict[str, Any], int], dict[str, Any]]] = Registry(
    "emulator", "edgewise.emulators", {"fantastic4": "edgewise.runtime.costs:model_costs"})
register_emulator = registrar(EMULATORS)


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
    return EMULATORS.get(profile["emulator"])(mlp, profile, batch)
