"""The bench stage: every exported version on every chosen target, and the report's latency/memory/energy view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgewise.base.atomic import write_json
from edgewise.bench.benchmark import model_inputs
from edgewise.bench.counts import count_onnx
from edgewise.bench.target_bench import BenchConfig, bench_model
from edgewise.core.ledger import EMULATION, ONNX, TORCH, Version
from edgewise.core.rundir import StageWindow
from edgewise.report.figures import energy_text, inputs_text, latency_text, memory_text
from edgewise.report.plots import latency_pareto, target_bars
from edgewise.report.section import Section
from edgewise.report.units import duration
from edgewise.stages.bench_config import BenchStageConfig
from edgewise.stages.state import ModelState
from edgewise.targets import load_target


def _emulated(version: Version) -> dict[str, Any] | None:
    """The emulate stage's figures of `version` per target (None when it was not emulated)."""
    if EMULATION not in version.files:
        return None
    costs = json.loads(version.files[EMULATION].read_text(encoding="utf-8"))["costs"]
    return {target: c["total"] for target, c in costs.items()}


def bench_stage(state: ModelState, config: BenchStageConfig) -> None:
    """Measure (x86-host), emulate (FantastIC4) or estimate (boards) each exported version; add rows and plots.

    A board's measured result (`board_results`) stands for the final version, the one a board receives.
    """
    name, data = state.entry.name, state.data
    sample = data.test.x[:1].numpy()
    settings = BenchConfig(iterations=config.iterations, duration_s=config.duration_s, threads=config.threads,
                           energy_window_s=config.energy_window_s)
    versions = [v for v in state.ledger.deployable() if ONNX in v.files]
    final = state.ledger.final()

    def bench(st: StageWindow) -> dict[str, Any]:
        records = []
        for version in versions:
            row, path = version.row, version.files[ONNX]
            # the data's first test sample feeds the model's first input; the others as the recipe states them
            inputs = model_inputs(path, config.inputs, sample=sample)
            counts = count_onnx(path, inputs)
            emulated = _emulated(version) or {}
            for target in config.targets:
                board = config.board_results.get(target) if version is final else None
                # a GPU without onnxruntime-gpu runs the torch model itself
                module = state.module(version) if load_target(target)["kind"] == "gpu" and TORCH in version.files \
                    else None
                record = bench_model(path, inputs, target, settings, counts=counts, emulated=emulated.get(target),
                                     precision=config.precision, board_result=board, torch_model=module)
                records.append({"model": name, "version": version.id, "stage": version.label, "score": row["score"],
                                "score_name": row["score_name"], "size_bytes": row["size_bytes"],
                                "file_bytes": Path(path).stat().st_size,
                                "counts": counts.to_json(), **record})
        st.add_output(write_json(st.path("bench.json"), records))
        return {"bench": records, "sections": [s.to_json() for s in _sections(name, records)]}

    inputs = [v.files[ONNX] for v in versions] + [v.files.get(EMULATION) for v in versions]
    inputs += [Path(p) for p in config.board_results.values()]
    state.stage("bench", config.model_dump(mode="json"), inputs, bench)


def _sections(name: str, records: list[dict[str, Any]]) -> list[Section]:
    rows = [(r["stage"], r["target"], latency_text(r["latency"]), memory_text(r["memory"]), energy_text(r["energy"]))
            for r in records]
    sections = [Section(
        f"Latency, memory and energy of {name}",
        ("model", "target", "latency median / p90", "memory", "energy / inference"), rows,
        "measured: timed or read from a sensor here; emulated: the FantastIC4 cost model; estimated: the calibrated "
        "per-layer TensorRT model of the board's GPU at its power mode, with the range published measurements fell "
        "in around such estimates; unavailable: no source exists here, and no number is shown. On FantastIC4 the "
        "float32 and pruned MLPs run with their weights rounded to 4 bits per layer (no retraining), the final model "
        "with its own 4-bit weights. Inputs: " + "; ".join(sorted({inputs_text(r["inputs"]) for r in records}))
        + ".",
        target_bars(records, name),
    )]
    measured = [r for r in records if r["latency"]["kind"] == "measured"]
    if measured:
        sections.append(Section(
            f"Latency against score (measured) of {name}", ("model", "target", "median latency", "score"),
            [(r["stage"], r["target"], duration(r["latency"]["median_ms"] / 1e3), f"{r['score']:.4f}")
             for r in measured],
            "The Pareto front (no other configuration is both faster and better) is drawn as a line.",
            latency_pareto(measured, name),
        ))
    return sections
