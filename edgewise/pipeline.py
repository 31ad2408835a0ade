"""The pipeline: runs a recipe's stages for each model into a run directory and writes the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import Section, csv_text
from bench.summary import experts_summary, summary_section
from edgewise.atomic import write_json, write_text
from edgewise.console import console
from edgewise.force import force_policy
from edgewise.recipe import Recipe
from edgewise.rundir import RunDirectory
from edgewise.stages.bench import bench_stage
from edgewise.stages.curves import curves_stage
from edgewise.stages.emulate import emulate_stage
from edgewise.stages.export import deploy_stage, export_stage
from edgewise.stages.onnx_model import onnx_export_stage, onnx_load_stage
from edgewise.stages.prune import experts_stage, prune_stage
from edgewise.stages.quantize import encode_stage, fold_stage, ladder_section, quantize_stage
from edgewise.stages.state import ModelState
from edgewise.stages.train import train_stage
from edgewise.zoo.data import load_data

RESULT_FIELDS = ("model", "stage", "task", "score_name", "score", "params", "macs", "size_bytes")


@dataclass
class RunResult:
    """What a run produced: its directory, one result row per model and stage, sections, and the report files."""

    root: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    reports: dict[str, Path] = field(default_factory=dict)
    bench: list[dict[str, Any]] = field(default_factory=list)


BENCH_FIELDS = ("model", "stage", "target", "score", "size_bytes", "latency_kind", "latency_median_ms",
                "latency_p90_ms", "memory_kind", "peak_rss_bytes", "energy_kind", "energy_j_per_inference",
                "energy_reason")


def bench_csv(records: list[dict[str, Any]]) -> str:
    """One CSV row per model x stage x target, each figure with its kind (measured/emulated/estimated)."""
    flat = [{"model": r["model"], "stage": r["stage"], "target": r["target"], "score": r["score"],
             "size_bytes": r["size_bytes"], "latency_kind": r["latency"]["kind"],
             "latency_median_ms": r["latency"].get("median_ms"), "latency_p90_ms": r["latency"].get("p90_ms"),
             "memory_kind": r["memory"]["kind"], "peak_rss_bytes": r["memory"].get("peak_rss_bytes"),
             "energy_kind": r["energy"]["kind"], "energy_j_per_inference": r["energy"].get("gross_j_per_inference"),
             "energy_reason": r["energy"].get("reason", "")} for r in records]
    return csv_text(flat, BENCH_FIELDS)


def run_recipe(recipe: Recipe, out: str | Path = "runs", name: str | None = None,
               force: Sequence[str] = ()) -> RunResult:
    """Run `recipe` into `out/<name or recipe.name>/`: every model through its stages, then the report.

    The run directory is locked for the run's duration. Each stage is recorded in the run's
    manifest.json as it finishes; results are written as results.json and results.csv, and the
    report as report.html and report.md. Running again into the same directory reuses every stage
    whose parameters and inputs are unchanged and whose outputs are intact, so an interrupted run
    resumes where it stopped; `force` (`all`, `STAGE` or `MODEL/STAGE`) reruns from those stages on.
    """
    root = Path(out) / (name or recipe.name)
    policy = force_policy(force, [m.name for m in recipe.models])
    with RunDirectory.create(root, name or recipe.name, recipe.model_dump(mode="json"), policy) as run:
        return _run(run, recipe, root)


def _run_torch(state: ModelState) -> None:
    entry = state.entry
    train_stage(state)
    if entry.prune is not None:
        prune_stage(state, entry.prune)
    if entry.experts:
        experts_stage(state, entry.experts, entry.expert_unions)
    if entry.curves is not None:
        curves_stage(state, entry.curves)
    if entry.fold:
        fold_stage(state)
    if entry.quantize is not None:
        quantized = quantize_stage(state, entry.quantize)
        if entry.encode:
            encode_stage(state, quantized)
    if len(state.ladder) > 1:
        ladder_section(state)
    if entry.emulate is not None:
        emulate_stage(state, entry.emulate)
    if entry.export is not None:
        export_stage(state, entry.export)
    if entry.deploy is not None:
        deploy_stage(state, entry.deploy)


def _run_onnx(state: ModelState) -> None:
    onnx_load_stage(state)
    if state.entry.export is not None:
        onnx_export_stage(state, state.entry.export)
    if state.entry.emulate is not None:
        emulate_stage(state, state.entry.emulate)


def _run(run: RunDirectory, recipe: Recipe, root: Path) -> RunResult:
    from bench.report import write_report

    result = RunResult(root)
    console.print(f"[bold]edgewise[/bold] run {run.manifest['run']} -> {root}")
    for entry in recipe.models:
        state = ModelState(run, entry, load_data(entry.data))
        (_run_onnx if entry.onnx is not None else _run_torch)(state)
        if entry.bench is not None:
            bench_stage(state, entry.bench)
            result.bench += state.bench_records
        result.rows += state.rows
        result.sections += state.sections
    write_json(root / "results.json", result.rows)
    write_text(root / "results.csv", csv_text(result.rows, RESULT_FIELDS))
    if result.bench:
        write_json(root / "bench.json", result.bench)
        write_text(root / "bench.csv", bench_csv(result.bench))
    if recipe.report:
        with run.stage("report") as st:
            experts = experts_summary(result.rows)
            sections = [summary_section(result.rows, result.bench), *([experts] if experts else []),
                        *result.sections]
            result.reports = write_report(root, result.rows, run.manifest, sections)
            for path in result.reports.values():
                st.add_output(path)
    return result
