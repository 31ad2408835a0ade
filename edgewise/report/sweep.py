"""A sweep's comparison: each configuration's final model per recipe model, its Pareto front, and the report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgewise.base.atomic import write_json, write_text
from edgewise.core.ledger import CLASS_SPECIFIC
from edgewise.report.plots import pareto_scatter
from edgewise.report.render import write_report
from edgewise.report.section import Section
from edgewise.report.tables import csv_text
from edgewise.report.units import binary_bytes, duration, si

KIND_PREFERENCE = ("measured", "emulated", "estimated")
# (field, True when larger is better): the objectives a configuration is compared on
OBJECTIVES = (("score", True), ("size_bytes", False), ("latency_ms", False), ("energy_j", False))
CSV_FIELDS = ("configuration", "model", "stage", "score_name", "score", "size_bytes", "smaller_than_float32",
              "latency_ms", "latency_kind", "latency_target", "energy_j", "energy_kind", "energy_target", "pareto")


def _figure(records: list[dict[str, Any]], part: str, key: str) -> tuple[float | None, str, str]:
    """The preferred (value, kind, target) of `part` among one model stage's bench records: measured first."""
    for kind in KIND_PREFERENCE:
        for r in records:
            if r[part]["kind"] == kind and r[part].get(key) is not None:
                return r[part][key], kind, r["target"]
    return None, "unavailable", ""


def sweep_rows(configurations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration and recipe model: its final compressed stage with size, score, latency, energy.

    Experts and unions are left out (they answer another question). Latency and energy are the
    first available of measured, emulated and estimated, with the kind and target kept beside them.
    """
    rows = []
    for config in configurations:
        if config["error"] is not None:
            continue
        for model in dict.fromkeys(r["model"] for r in config["rows"]):
            mine = [r for r in config["rows"] if r["model"] == model and r["kind"] not in CLASS_SPECIFIC]
            final, base = mine[-1], mine[0]
            bench = [b for b in config["bench"] if b["model"] == model and b["version"] == final["runs_as"]]
            latency, latency_kind, latency_target = _figure(bench, "latency", "median_ms")
            energy, energy_kind, energy_target = _figure(bench, "energy", "gross_j_per_inference")
            rows.append({"configuration": config["name"], "overrides": config["overrides"], "model": model,
                         "stage": final["stage"], "score_name": final["score_name"], "score": final["score"],
                         "size_bytes": final["size_bytes"], "float_score": base["score"],
                         "smaller_than_float32": base["size_bytes"] / final["size_bytes"],
                         "latency_ms": latency, "latency_kind": latency_kind, "latency_target": latency_target,
                         "energy_j": energy, "energy_kind": energy_kind, "energy_target": energy_target})
    return mark_pareto(rows)


def _comparable(rows: list[dict[str, Any]], field: str) -> bool:
    """An objective counts only where every row has it, of one kind on one target (like is compared with like)."""
    kind = field.removesuffix("_ms").removesuffix("_j")
    if kind not in ("latency", "energy"):
        return True
    return all(r[field] is not None for r in rows) and len({(r[f"{kind}_kind"], r[f"{kind}_target"])
                                                             for r in rows}) == 1


def dominates(a: dict[str, Any], b: dict[str, Any], objectives: Sequence[tuple[str, bool]]) -> bool:
    """True when `a` is at least as good as `b` on every objective and better on one."""
    better = False
    for field, larger_is_better in objectives:
        x, y = (a[field], b[field]) if larger_is_better else (b[field], a[field])
        if x < y:
            return False
        better = better or x > y
    return better


def mark_pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set `pareto` (no other configuration of the same model dominates it) and `objectives` on every row."""
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        objectives = [o for o in OBJECTIVES if _comparable(mine, o[0])]
        for r in mine:
            r["pareto"] = not any(dominates(other, r, objectives) for other in mine if other is not r)
            r["objectives"] = [field for field, _ in objectives]
    return rows


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sections(rows: list[dict[str, Any]], axes: list[str], parallel: bool) -> list[Section]:
    contention = (" Measured latencies were taken while other configurations ran at once (local workers each on "
                  "their own CPUs, or Ray tasks): caches and memory bandwidth were shared, so rerun with --jobs 1 "
                  "--force bench for figures to quote." if parallel else "")
    sections = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        first = mine[0]
        sections.append(Section(
            f"Sweep: {len(mine)} configurations of {model}",
            ("configuration", *axes, first["score_name"], "size", "smaller than float32",
             "latency (median)", "energy / inference", "Pareto"),
            [(r["configuration"], *(_value(r["overrides"].get(a, "")) for a in axes), f"{r['score']:.4f}",
              binary_bytes(r["size_bytes"]), f"{r['smaller_than_float32']:.1f}x",
              "unavailable" if r["latency_ms"] is None else
              f"{duration(r['latency_ms'] / 1e3)} ({r['latency_kind']}, {r['latency_target']})",
              "unavailable" if r["energy_j"] is None else
              f"{si(r['energy_j'], 'J')} ({r['energy_kind']}, {r['energy_target']})",
              "yes" if r["pareto"] else "") for r in mine],
            f"Each configuration's final compressed {model} (float32 scores {first['float_score']:.4f}). Pareto: no "
            f"other configuration is at least as good on every objective ({', '.join(first['objectives'])}) and "
            "better on one; latency and energy count only where every configuration has them of one kind on one "
            f"target.{contention}",
            pareto_scatter([(r["size_bytes"], r["score"], r["configuration"]) for r in mine],
                           "size [bytes]", first["score_name"], f"{model}: score against size"),
            lead=True,
        ))
        if "latency_ms" in first["objectives"]:
            sections.append(Section(
                f"Sweep: latency against score of {model}", ("configuration", "latency", first["score_name"]),
                [(r["configuration"], f"{r['latency_ms']:.4g} ms ({r['latency_kind']})", f"{r['score']:.4f}")
                 for r in mine],
                f"Median latency on {first['latency_target']} ({first['latency_kind']}); the line is the front.",
                pareto_scatter([(r["latency_ms"], r["score"], r["configuration"]) for r in mine],
                               f"median latency [ms] ({first['latency_kind']})", first["score_name"],
                               f"{model}: latency against score"),
            ))
    return sections


def write_sweep_report(root: Path, recipe: Any, configurations: list[dict[str, Any]],
                       manifest: dict[str, Any], parallel: bool = False) -> dict[str, Path]:
    """Write sweep.json (every configuration's summary), sweep.csv (the compared rows) and the report into `root`."""
    rows = sweep_rows(configurations)
    paths = {"json": write_json(root / "sweep.json", {"axes": recipe.sweep, "configurations": configurations,
                                                      "compared": rows}),
             "csv": write_text(root / "sweep.csv", csv_text(rows, CSV_FIELDS))}
    failed = [(c["name"], c["error"]) for c in configurations if c["error"] is not None]
    sections = _sections(rows, list(recipe.sweep), parallel)
    if failed:
        sections.append(Section("Failed configurations", ("configuration", "error"), failed,
                                "Their finished stages are kept and reused when the sweep runs again.", lead=True))
    results = [{**r, "stage": f"{c['name']}: {r['stage']}"} for c in configurations for r in c["rows"]
               if c["error"] is None]
    return {**paths, **write_report(root, results, manifest, sections)}
