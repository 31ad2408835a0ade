"""The pipeline: runs a recipe's stages for each model into a run directory and writes the report."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.model_stats import measure_cost
from edgewise.atomic import write_json, write_text
from edgewise.console import console
from edgewise.modelio import save_model
from edgewise.recipe import ModelEntry, Recipe
from edgewise.rundir import RunDirectory
from edgewise.zoo.cache import trained_model
from edgewise.zoo.data import load_data
from edgewise.zoo.training import evaluate

RESULT_FIELDS = ("model", "stage", "task", "score_name", "score", "params", "macs", "size_bytes")


@dataclass
class RunResult:
    """What a run produced: its directory, one result row per model and stage, and the report files."""

    root: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, Path] = field(default_factory=dict)


def _train_and_evaluate(run: RunDirectory, entry: ModelEntry) -> dict[str, Any]:
    data = load_data(entry.data)
    with run.stage("train", entry.name, params={"arch": entry.arch, "arch_args": entry.arch_args,
                                                 "data": entry.data.model_dump(mode="json"),
                                                 "train": entry.train.model_dump(), "seed": entry.seed}) as st:
        trained = trained_model(entry.arch, data, entry.train, entry.seed, entry.arch_args, label=f"train {entry.name}")
        st.add_input(trained.path)
        model_path = save_model(trained.module, st.path("model.pt"), trained.card)
        st.add_output(model_path)
        st.metrics.update(from_cache=trained.cached, epochs_run=trained.card["history"]["epochs_run"],
                          best_val_score=trained.card["history"]["best_val_score"])
    with run.stage("evaluate", entry.name, params={"split": "test"}) as st:
        metrics = evaluate(trained.module, data.test, data.task, data.class_names)
        cost = measure_cost(trained.module, data.input_shape)
        st.metrics.update(metrics, params=cost.params, macs=cost.macs)
        write_json(st.path("metrics.json"), st.metrics)
        st.add_output(st.path("metrics.json"))
    source = "cache" if trained.cached else "trained"
    console.print(f"  {entry.name}: {metrics['score_name']} {metrics['score']:.4f} ({source})")
    return {"model": entry.name, "stage": "float32", "task": data.task, "score_name": metrics["score_name"],
            "score": metrics["score"], "params": cost.params, "macs": cost.macs,
            "size_bytes": model_path.stat().st_size}


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """The result rows as CSV text with a header of RESULT_FIELDS."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def run_recipe(recipe: Recipe, out: str | Path = "runs", name: str | None = None) -> RunResult:
    """Run `recipe` into `out/<name or recipe.name>/`: every model trained (or loaded) and evaluated, then the report.

    Each stage is recorded in the run's manifest.json as it finishes; results are written as
    results.json and results.csv, and the report as report.html and report.md.
    """
    from bench.report import write_report

    root = Path(out) / (name or recipe.name)
    run = RunDirectory.create(root, name or recipe.name, recipe.model_dump(mode="json"))
    result = RunResult(root)
    console.print(f"[bold]edgewise[/bold] run {run.manifest['run']} -> {root}")
    for entry in recipe.models:
        result.rows.append(_train_and_evaluate(run, entry))
    write_json(root / "results.json", result.rows)
    write_text(root / "results.csv", rows_to_csv(result.rows))
    if recipe.report:
        with run.stage("report") as st:
            result.reports = write_report(root, result.rows, run.manifest)
            for path in result.reports.values():
                st.add_output(path)
    return result
