"""The bench stage: every exported model on every chosen target, and the report's latency/memory/energy view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.onnx_stats import onnx_stats
from bench.plots import latency_pareto, target_bars
from bench.report import Section
from bench.target_bench import BenchConfig, bench_model
from bench.units import duration, si
from compress.model_stats import measure_cost
from edgewise.atomic import write_json
from edgewise.recipe import BenchStageConfig
from edgewise.rundir import StageWindow
from edgewise.stages.emulate import rounded_mlp
from edgewise.stages.state import ModelState


def _ms(part: dict[str, Any]) -> str:
    if part["kind"] == "unavailable":
        return "unavailable"
    return f"{duration(part['median_ms'] / 1e3)} / {duration(part['p90_ms'] / 1e3)} ({part['kind']})"


def _memory(part: dict[str, Any]) -> str:
    if part["kind"] == "unavailable":
        return "unavailable"
    if "peak_rss_bytes" in part:
        return f"{part['peak_rss_bytes'] / 2**20:.1f} MiB peak ({part['kind']})"
    return f"{part['weight_bytes']:,} B weights ({part['kind']})"


def _energy(part: dict[str, Any]) -> str:
    if part["kind"] == "unavailable":
        return f"unavailable: {part['reason']}"
    return f"{si(part['gross_j_per_inference'], 'J')} ({part['kind']})"


def baseline_mlp(state: ModelState, module: Any) -> Any:
    """The integer kernel of a float stage (weights rounded to 4 bits), when the model emulates on FantastIC4."""
    if state.entry.emulate is None or module is None:
        return None
    return rounded_mlp(module, state.data.train.x.numpy(), state.entry.emulate)


def bench_stage(state: ModelState, config: BenchStageConfig) -> None:
    """Measure (x86-host), emulate (FantastIC4) or estimate (boards) each exported model; add rows and plots."""
    name, data = state.entry.name, state.data
    probe = data.test.x[:1].numpy()
    settings = BenchConfig(iterations=config.iterations, duration_s=config.duration_s, threads=config.threads,
                           energy_window_s=config.energy_window_s)

    def bench(st: StageWindow) -> dict[str, Any]:
        records = []
        for row, path, module in state.exported:
            # a model brought as ONNX has no torch module: its MACs come from the file's shapes
            macs = measure_cost(module, data.input_shape).macs if module is not None else onnx_stats(path)["macs"]
            final = path.name == "model.onnx"
            # the final file runs on the emulated accelerator with its own 4-bit weights; the float32 and
            # pruned MLPs with theirs rounded to 4 bits (no retraining), the baseline they are compared with
            mlp = state.integer_mlp if final else baseline_mlp(state, module)
            for target in config.targets:
                board = config.board_results.get(target) if final else None
                record = bench_model(path, probe, target, settings, macs=macs, weight_bytes=row["size_bytes"],
                                     mlp=mlp, board_result=board)
                records.append({"model": name, "stage": row["stage"], "score": row["score"],
                                "score_name": row["score_name"], "size_bytes": row["size_bytes"], **record})
        st.add_output(write_json(st.path("bench.json"), records))
        return {"records": records, "sections": [s.to_json() for s in _sections(name, records)]}

    # the emulated figures come from the emulate stage's kernel, so its result is an input too
    inputs = [p for _, p, _ in state.exported] + [Path(p) for p in config.board_results.values()]
    out = state.stage("bench", config.model_dump(mode="json"), [*inputs, state.emulated_path], bench)
    state.bench_records = out["records"]


def _sections(name: str, records: list[dict[str, Any]]) -> list[Section]:
    rows = [(r["stage"], r["target"], _ms(r["latency"]), _memory(r["memory"]), _energy(r["energy"]))
            for r in records]
    sections = [Section(
        f"Latency, memory and energy of {name}",
        ("model", "target", "latency median / p90", "memory", "energy / inference"), rows,
        "measured: timed or read from a sensor here; emulated: the FantastIC4 cost model; estimated: a roofline "
        "from the board's published peak compute and bandwidth (a lower bound on latency) and its power mode; "
        "unavailable: no source exists here, and no number is shown. On FantastIC4 the float32 and pruned MLPs run "
        "with their weights rounded to 4 bits per layer (no retraining), the final model with its own 4-bit weights.",
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
