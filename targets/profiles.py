"""Hardware target profiles: YAML files in targets/data/, loaded and checked here."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from edgewise.board.errors import UserError


def target_names(kind: str | None = None) -> list[str]:
    """Names of the shipped target profiles; with `kind` (host, gpu, board, emulated) only those of that kind."""
    folder = resources.files("edgewise.targets").joinpath("data")
    names = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
    return names if kind is None else [n for n in names if load_target(n)["kind"] == kind]


def load_target(name: str) -> dict[str, Any]:
    """The profile `name` as a dict (published figures, assumptions, backends, power source)."""
    if name not in target_names():
        raise UserError(f"unknown target {name!r}", f"use one of {', '.join(target_names())}")
    text = resources.files("edgewise.targets").joinpath("data", f"{name}.yaml").read_text(encoding="utf-8")
    profile = yaml.safe_load(text)
    if profile.get("name") != name:
        raise UserError(f"target file {name}.yaml names itself {profile.get('name')!r}", "fix the profile file")
    return profile
