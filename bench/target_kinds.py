"""Each kind of target (host, gpu, board, emulated) as one class: whether it runs on this machine, and where its
latency, memory and energy come from there and elsewhere; the classes by a profile's `kind` (TARGET_KINDS).

Light to import (`edgewise targets` answers without onnx or torch): a kind's `parts` imports the ways of measuring
(edgewise.bench.target_bench) when it measures.
"""

from __future__ import annotations

import abc
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgewise.bench.gpu import measure_gpu
from edgewise.bench.this_machine import board_model, this_board
from edgewise.board.energy import NvmlMeter
from edgewise.board.errors import UserError
from edgewise.targets import load_target, target_names
from edgewise.targets.power_sources import meter_for

if TYPE_CHECKING:
    from edgewise.bench.counts import Counts
    from edgewise.bench.inputs import Inputs
    from edgewise.bench.target_bench import BenchConfig


@dataclass(frozen=True)
class Job:
    """What a benchmark was asked: the model's file and inputs, how hard to measure, and what else it has for the
    target (the emulator's totals, the layer counts an estimate reads, a bundle's result, the torch model)."""

    onnx_path: Path
    inputs: Inputs
    config: BenchConfig
    counts: Counts | None = None
    emulated: dict[str, Any] | None = None
    precision: str | None = None
    board_result: str | os.PathLike[str] | None = None
    torch_model: Any | None = None


def _energy_line(profile: dict[str, Any]) -> str:
    meter, why = meter_for(profile)
    return f"measured ({meter.label})" if meter else f"unavailable: {why}"


class TargetKind(abc.ABC):
    """How one kind of target is benchmarked: whether it runs here (`availability`), and its latency, memory and
    energy for a job (`parts`), each saying how it was obtained."""

    @abc.abstractmethod
    def availability(self, profile: dict[str, Any]) -> dict[str, Any]:
        """runs_here, figures (measured, emulated, estimated or unavailable), energy and why, for this machine."""

    @abc.abstractmethod
    def parts(self, profile: dict[str, Any], status: dict[str, Any], job: Job) -> dict[str, Any]:
        """The job's latency, memory and energy on the target (and what else the kind records)."""


class HostKind(TargetKind):
    """This machine's x86-64 CPU: measured here with ONNX Runtime, energy from the target's meter."""

    def availability(self, profile: dict[str, Any]) -> dict[str, Any]:
        ok = platform.machine() in ("x86_64", "AMD64")
        return {"runs_here": ok, "figures": "measured" if ok else "unavailable", "energy": _energy_line(profile),
                "why": f"this CPU ({platform.machine()})" if ok else f"not an x86-64 machine ({platform.machine()})"}

    def parts(self, profile: dict[str, Any], status: dict[str, Any], job: Job) -> dict[str, Any]:
        from edgewise.bench.target_bench import measured_here

        if not status["runs_here"]:
            raise UserError(f"target {profile['name']} is not this machine: {status['why']}",
                            "pick a target that runs here")
        return measured_here(Path(job.onnx_path), job.inputs, profile, job.config)


class GpuKind(TargetKind):
    """An NVIDIA GPU found through NVML: measured there (ONNX Runtime's CUDA or TensorRT provider, else the torch
    model on CUDA), with NVML's memory and energy; unavailable elsewhere."""

    def availability(self, profile: dict[str, Any]) -> dict[str, Any]:
        ok, why = NvmlMeter().available()  # the GPU is found through NVML, its energy source too
        return {"runs_here": ok, "figures": "measured" if ok else "unavailable",
                "energy": "measured (NVML)" if ok else f"unavailable: {why}", "why": why}

    def parts(self, profile: dict[str, Any], status: dict[str, Any], job: Job) -> dict[str, Any]:
        from edgewise.bench.target_bench import pin_cpus, unavailable_parts

        if not status["runs_here"]:
            return unavailable_parts(status["why"])
        pin_cpus(job.config.cpus)
        return measure_gpu(job.onnx_path, job.inputs, profile, job.config, job.torch_model)


class BoardKind(TargetKind):
    """A board: measured when this machine is it, from a bundle's result.json when one is given (beside the estimate
    it replaces), else the calibrated per-layer estimate from the model's counts."""

    def availability(self, profile: dict[str, Any]) -> dict[str, Any]:
        if this_board() == profile["name"]:
            return {"runs_here": True, "figures": "measured", "energy": _energy_line(profile),
                    "why": f"this board ({board_model()})"}
        return {"runs_here": False, "figures": "estimated", "energy": "estimated (power mode x estimated latency)",
                "why": "not this machine: a per-layer estimate calibrated on published measurements, or a result JSON "
                       "from the bundle's run.py"}

    def parts(self, profile: dict[str, Any], status: dict[str, Any], job: Job) -> dict[str, Any]:
        from edgewise.bench.target_bench import (
            estimated_parts,
            from_board_result,
            measured_on_board,
            refuse_another_board,
        )

        if job.board_result:
            return from_board_result(Path(job.board_result), estimated_parts(profile, job.counts, job.precision))
        if status["runs_here"]:
            return measured_on_board(Path(job.onnx_path), job.inputs, profile, job.config, job.precision)
        refuse_another_board(profile["name"])
        return estimated_parts(profile, job.counts, job.precision)


class EmulatedKind(TargetKind):
    """An emulated accelerator: its cost model's figures for the model, anywhere."""

    def availability(self, profile: dict[str, Any]) -> dict[str, Any]:
        return {"runs_here": True, "figures": "emulated", "energy": "emulated (cost model)",
                "why": "the FantastIC4 emulator runs anywhere"}

    def parts(self, profile: dict[str, Any], status: dict[str, Any], job: Job) -> dict[str, Any]:
        from edgewise.bench.target_bench import emulated_parts

        return emulated_parts(job.emulated)


# a profile's kind -> how that kind is benchmarked (the kinds edgewise.targets.profiles checks profiles against)
TARGET_KINDS: dict[str, TargetKind] = {"host": HostKind(), "gpu": GpuKind(), "board": BoardKind(),
                                       "emulated": EmulatedKind()}


def availability(name: str) -> dict[str, Any]:
    """For target `name`: can it run here, how figures are obtained (measured/emulated/estimated), the energy source."""
    profile = load_target(name)
    return {"target": name, **TARGET_KINDS[profile["kind"]].availability(profile)}


def all_targets() -> list[dict[str, Any]]:
    """Availability of every target."""
    return [availability(name) for name in target_names()]
