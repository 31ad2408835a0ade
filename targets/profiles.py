"""Hardware target profiles by name: the shipped YAML files, a user's folder and other packages' entry points, each
checked against the schema of its kind (host, gpu, board, emulated) when it is loaded."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from edgewise.base.registry import Registry, registrar
from edgewise.board.errors import UserError

USER_FOLDER = "EDGEWISE_TARGETS"  # the variable naming a folder of the user's profiles (one NAME.yaml each)
DEFAULT_USER_FOLDER = Path("~/.config/edgewise/targets")


class Profile(BaseModel):
    """What every target profile says: its name, what it is, its kind, where models run there and what reads its
    power. Kind-specific data (published figures, GPU rates, the estimate's constants) is kept as given."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    backends: list[str] = Field(min_length=1)
    power_source: str = Field(description="a registered power source (edgewise.targets.POWER_SOURCES), or a phrase "
                              "saying why there is none (an emulated target's cost model)")
    published: dict[str, Any] = Field(default_factory=dict)
    assumptions: dict[str, Any] = Field(default_factory=dict)


class HostProfile(Profile):
    """The machine the kit runs on, measured there."""

    kind: Literal["host"]


class GpuProfile(Profile):
    """An NVIDIA GPU found through NVML, measured there."""

    kind: Literal["gpu"]


class PowerMode(BaseModel):
    """A board's power mode: the GPU clock and memory bandwidth its estimate runs at, and the module's power."""

    model_config = ConfigDict(extra="forbid")
    gpu_mhz: float = Field(gt=0)
    memory_gbps: float = Field(gt=0)
    power_w: float = Field(gt=0)


class BoardProfile(Profile):
    """A board: measured when this machine is it (its device tree's model string holds `device_tree_model`),
    estimated from its GPU and power modes elsewhere, or measured by a bundle's run.py on the board."""

    kind: Literal["board"]
    device_tree_model: str = Field(min_length=1, description="what the board's /proc/device-tree/model holds, e.g. "
                                   "'Orin NX' (the longest match names the board: 'Orin Nano' over 'Nano')")
    total_rail: str | None = Field(None, description="the input rail that is the board's total (None: the module "
                                   "rails are summed)")
    gpu: dict[str, Any]
    power_modes: dict[str, PowerMode] = Field(min_length=1)
    default_power_mode: str
    estimate: dict[str, Any]


class EmulatedProfile(Profile):
    """An accelerator the kit emulates: `emulator` names its cost model (edgewise.runtime.emulators)."""

    kind: Literal["emulated"]
    emulator: str


TargetProfile = Annotated[HostProfile | GpuProfile | BoardProfile | EmulatedProfile, Field(discriminator="kind")]
_SCHEMA: TypeAdapter[Any] = TypeAdapter(TargetProfile)
# other packages' profiles: an entry point of the group names a dict (or a function returning one), or `register_target`
TARGETS: Registry[Any] = Registry("target", "edgewise.targets")
register_target = registrar(TARGETS)


def _shipped() -> dict[str, Any]:
    folder = resources.files("edgewise.targets").joinpath("data")
    return {p.name.removesuffix(".yaml"): p for p in folder.iterdir() if p.name.endswith(".yaml")}


def user_folder() -> Path:
    """The folder of the user's own profiles: $EDGEWISE_TARGETS, else ~/.config/edgewise/targets."""
    return Path(os.environ.get(USER_FOLDER) or DEFAULT_USER_FOLDER).expanduser()


def _sources() -> dict[str, Any]:
    """Every profile's source by name: a shipped file, the user's file (which replaces a shipped one of the same
    name), or a plug-in's name in TARGETS."""
    sources: dict[str, Any] = _shipped()
    folder = user_folder()
    if folder.is_dir():
        sources.update({p.stem: p for p in sorted(folder.glob("*.yaml"))})
    for name in TARGETS.names():
        if name in sources:
            raise UserError(f"the target {name!r} of a plug-in has the name of a profile the kit or "
                            f"{folder} already has", "give the plug-in's target another name")
        sources[name] = name
    return sources


def target_names(kind: str | None = None) -> list[str]:
    """Names of every target profile (shipped, the user's folder, plug-ins); with `kind` (host, gpu, board, emulated)
    only those of that kind."""
    names = sorted(_sources())
    return names if kind is None else [n for n in names if load_target(n)["kind"] == kind]


def load_target(name: str) -> dict[str, Any]:
    """The profile `name`, checked against its kind's schema, as a dict (published figures, assumptions, backends,
    power source); a profile that does not fit is a UserError naming its source and the field."""
    sources = _sources()
    if name not in sources:
        raise UserError(f"unknown target {name!r}", f"use one of {', '.join(sorted(sources))}, or add a profile "
                        f"to {user_folder()} (${USER_FOLDER})")
    source = sources[name]
    if isinstance(source, str):
        entry = TARGETS.get(source)
        raw, where = (entry() if callable(entry) else entry), f"the plug-in target {name!r}"
    else:
        raw, where = yaml.safe_load(source.read_text(encoding="utf-8")), f"target file {source}"
    if not isinstance(raw, dict):
        raise UserError(f"{where} holds {type(raw).__name__}, not a profile", "make it a mapping of the profile's "
                        "fields (name, description, kind, backends, power_source, ...)")
    if raw.get("name") != name:
        raise UserError(f"{where} names itself {raw.get('name')!r}", f"name it {name!r}, as its file or entry is")
    try:
        profile = _SCHEMA.validate_python(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        raise UserError(f"{where} does not fit a target profile: {field}: {error['msg']}",
                        "fix the profile (the kinds and their fields: edgewise.targets.profiles)") from None
    return profile.model_dump()
