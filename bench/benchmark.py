"""Benchmarking a model file or a deploy bundle on a target: `edgewise bench` and `edgewise.bench(...)`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgewise.base.errors import UserError
from edgewise.bench.onnx_stats import onnx_stats
from edgewise.bench.target_bench import BenchConfig, bench_model


def _model_and_probe(path: Path) -> tuple[Path, np.ndarray]:
    if path.is_dir():
        manifest = path / "manifest.json"
        if not manifest.is_file():
            raise UserError(f"{path} is a folder without manifest.json", "give an .onnx file or a deploy bundle")
        entry = json.loads(manifest.read_text())
        return path / entry["model"], np.load(path / entry["probe"]["input"])[:1]
    if path.suffix != ".onnx" or not path.is_file():
        raise UserError(f"{path} is not an ONNX file or a bundle", "export the model first (edgewise export)")
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and others for damaged files
        raise UserError(f"cannot read {path} as ONNX: {type(exc).__name__}", "export the model again") from None
    dims = [d.dim_value if d.dim_value > 0 else 1 for d in graph.input[0].type.tensor_type.shape.dim]
    # inputs in [0, 1] like the kit's data; latency does not depend on the values
    return path, np.random.default_rng(0).random(dims).astype(np.float32)


def _emulated(path: Path, probe: np.ndarray, target: str) -> dict[str, Any] | None:
    """The total emulated costs of a 4-bit ONNX MLP on an emulated target; None when the model does not fit the kernel.

    The probe only sets activation scales: the emulated costs depend on the weights alone.
    """
    from edgewise.export.onnx_records import records_from_onnx
    from edgewise.runtime import IntegerMLP

    try:
        mlp = IntegerMLP.from_records(records_from_onnx(path), probe.reshape(1, -1))
    except UserError:
        return None
    return mlp.costs(target)["total"]


def benchmark(model: str | os.PathLike[str], target: str = "x86-host", config: BenchConfig | None = None,
              board_result: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Latency, memory and energy of an ONNX file or deploy bundle on `target`, each with how it was obtained.

    On this machine's own target the figures are measured; on an emulated accelerator a 4-bit
    MLP runs through the integer kernel's cost model; a board not at hand gets an estimate, or its
    own measurement when `board_result` (a bundle's result.json) is given. Returns the record
    (JSON-able: target, latency, memory, energy, MACs and weight bytes); a target with no figure
    at all here is a UserError.
    """
    from edgewise.targets import load_target

    config = config or BenchConfig()
    path, probe = _model_and_probe(Path(model))
    stats = onnx_stats(path)
    emulated = _emulated(path, probe, target) if load_target(target)["kind"] == "emulated" else None
    record = bench_model(path, probe, target, config, macs=stats["macs"], weight_bytes=stats["weight_bytes"],
                         emulated=emulated, board_result=board_result)
    if all(record[part]["kind"] == "unavailable" for part in ("latency", "memory", "energy")):
        raise UserError(f"target {target} is not available here: {record['latency']['reason']}",
                        "pick a target from `edgewise targets` that runs, emulates or estimates here")
    return {**record, "macs": stats["macs"], "weight_bytes": stats["weight_bytes"]}
