"""The pipeline: each recipe model through the stage table's stages into a run directory, then results and report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgewise.base.atomic import write_json, write_text
from edgewise.base.device import resolve_device
from edgewise.base.paths import run_directory
from edgewise.board.errors import UserError
from edgewise.core.console import console
from edgewise.core.modelio import load_model
from edgewise.core.rundir import RunDirectory, StageWindow
from edgewise.core.usercode import allow_codes
from edgewise.force import force_policy
from edgewise.recipe import Recipe
from edgewise.report.ladder import ladder_section
from edgewise.report.render import write_report
from edgewise.report.section import Section
from edgewise.report.summary import experts_summary, summary_section
from edgewise.report.tables import RESULT_FIELDS, bench_csv, csv_text
from edgewise.stages.state import ModelState
from edgewise.stages.table import STAGES
from edgewise.zoo.agreement import module_reference, onnx_reference, source_labelled
from edgewise.zoo.data import load_data
from edgewise.zoo.dataset import UNLABELLED, Dataset
from edgewise.zoo.fit_check import fitted_layout, module_takes, onnx_takes


@dataclass
class RunResult:
    """What a run produced: its directory, one result row per model version, the versions themselves, report
    sections, benchmark records and the report files."""

    root: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    reports: dict[str, Path] = field(default_factory=dict)
    bench: list[dict[str, Any]] = field(default_factory=list)


def run_recipe(recipe: Recipe, out: str | Path = "runs", name: str | None = None,
               force: Sequence[str] = ()) -> RunResult:
    """Run `recipe` into `out/<name or recipe.name>/`: every model through its stages, then the report.

    The run directory is locked for the run's duration. Each stage is recorded in the run's
    manifest.json as it finishes; results are written as results.json and results.csv (one row
    per model version), versions.json (each model's ledger), bench.json and bench.csv, and the
    report as report.html and report.md. Running again into the same directory reuses every
    stage whose parameters and inputs are unchanged and whose outputs are intact, so an
    interrupted run resumes where it stopped; `force` (`all`, `STAGE` or `MODEL/STAGE`) reruns
    from those stages on.
    """
    root = run_directory(out, name or recipe.name)
    policy = force_policy(force, [m.name for m in recipe.models])
    device = resolve_device(recipe.device)  # a device this machine lacks is refused before anything is written
    with RunDirectory.create(root, name or recipe.name, recipe.model_dump(mode="json"), policy) as run:
        return _run(run, recipe, root, device)


def entry_data(entry: Any) -> Dataset:
    """The data of a recipe's model entry; data without labels is labelled by the entry's own model (its ONNX file or
    model file) and scored by agreement with it. Training needs labels, so an architecture to train refuses it."""
    data = load_data(entry.data)
    if data.task != UNLABELLED:
        return data
    if entry.onnx is not None:
        return source_labelled(fitted_layout(data, onnx_takes(entry.onnx)), onnx_reference(entry.onnx), entry.score)
    if entry.file is not None:

        module = load_model(entry.file, entry.trusted)[0]
        return source_labelled(fitted_layout(data, module_takes(module)), module_reference(module), entry.score)
    raise UserError(f"model {entry.name}: its data has no labels, and training (or fitting weights to the classes) "
                    "needs them", "give labels (y in the .npz, or class folders), or a trained model (file: or onnx:)")


def run_model(state: ModelState) -> None:
    """Every stage of the table that the model's entry switches on, in order."""
    for stage in STAGES:
        if stage.applies(state.entry):
            state.running = stage.name
            stage.function(state, stage.config(state.entry))


def _run(run: RunDirectory, recipe: Recipe, root: Path, device: torch.device) -> RunResult:
    result = RunResult(root)
    console.print(f"[bold]edgewise[/bold] run {run.manifest['run']} -> {root} (torch on {device})")
    for entry in recipe.models:
        if entry.code is not None:
            allow_codes(entry.code)
        state = ModelState(run, entry, entry_data(entry), device=device)
        run_model(state)
        result.rows += state.ledger.rows()
        result.versions[entry.name] = [v.to_json(root) for v in state.ledger]
        rungs = [v.rung for v in state.ledger if v.rung is not None]
        result.sections += ([ladder_section(entry.name, rungs)] if len(rungs) > 1 else []) + state.sections
        result.bench += state.bench
    with run.stage("report") as st:
        _write_results(st, result, recipe, run.manifest)
    run.finish()
    return result


def _write_results(st: StageWindow, result: RunResult, recipe: Recipe, manifest: dict[str, Any]) -> None:
    """The run's tables (results, versions, size ladders, bench records) and, when the recipe asks, the report."""
    root = result.root
    st.add_output(write_json(root / "results.json", result.rows))
    st.add_output(write_text(root / "results.csv", csv_text(result.rows, RESULT_FIELDS)))
    st.add_output(write_json(root / "versions.json", result.versions))
    for model, versions in result.versions.items():
        rungs = [v["rung"] for v in versions if v["rung"] is not None]
        if len(rungs) > 1:
            st.add_output(write_json(root / model / "size_ladder.json", rungs))
    if result.bench:
        st.add_output(write_json(root / "bench.json", result.bench))
        st.add_output(write_text(root / "bench.csv", bench_csv(result.bench)))
    if recipe.report:
        experts = experts_summary(result.rows)
        sections = [summary_section(result.rows, result.bench), *([experts] if experts else []), *result.sections]
        result.reports = write_report(root, result.rows, manifest, sections)
        for path in result.reports.values():
            st.add_output(path)
