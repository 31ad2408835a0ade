"""Benchmarking a model file or a deploy bundle on a target, as `edgewise bench` does."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from bench.onnx_stats import onnx_stats
from bench.target_bench import BenchConfig, bench_model
from edgewise.errors import UserError


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


def bench_file(model: str | os.PathLike[str], target: str, config: BenchConfig,
               board_result: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Benchmark an ONNX file or bundle on `target`; a 4-bit MLP also runs on the FantastIC4 emulator."""
    path, probe = _model_and_probe(Path(model))
    stats = onnx_stats(path)
    mlp = None
    if target.startswith("fantastic4"):
        from runtime import IntegerMLP

        try:
            # the probe only sets activation scales; the emulated costs depend on the weights alone
            mlp = IntegerMLP.from_onnx(str(path), probe.reshape(1, -1))
        except UserError:
            mlp = None
    record = bench_model(path, probe, target, config, macs=stats["macs"], weight_bytes=stats["weight_bytes"],
                         mlp=mlp, board_result=board_result)
    if all(record[part]["kind"] == "unavailable" for part in ("latency", "memory", "energy")):
        raise UserError(f"target {target} is not available here: {record['latency']['reason']}",
                        "pick a target from `edgewise targets` that runs, emulates or estimates here")
    return {**record, "macs": stats["macs"], "weight_bytes": stats["weight_bytes"]}
