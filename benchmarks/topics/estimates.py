"""Board estimates against published measurements: estimate / published for every calibration point (target 0.5-2)."""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import warnings
from importlib import resources
from pathlib import Path

import yaml

from benchmarks.suite import Figure


def published_points() -> tuple[list[dict], dict[str, str]]:
    """The calibration points and their sources (targets/calibration/published.yaml)."""
    text = resources.files("edgewise.targets").joinpath("calibration", "published.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return data["points"], data["sources"]


def model_counts(name: str, shape: str, folder: Path):
    """The counts of an Ultralytics detection architecture (built from its yaml, without weights) at `shape`."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import onnx
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from edgewise.bench.counts import count_onnx
    from edgewise.bench.inputs import declared_inputs, parse_request, resolve_inputs

    model = DetectionModel(f"{name}.yaml", verbose=False).eval()
    for module in model.modules():
        if hasattr(module, "export"):
            module.export = True  # the deployable head: one output tensor, as exported for TensorRT
    path = folder / f"{name}.onnx"
    size = tuple(int(d) for d in shape.split("x"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(size),), str(path), dynamo=False, opset_version=17)
    declared = declared_inputs(onnx.load(str(path), load_external_data=False).graph)
    return count_onnx(path, resolve_inputs(declared, [parse_request(f"{declared[0].name}:{shape}")]))


def run() -> list[Figure]:
    """Estimate every published point with the board's calibrated constants; report estimate / published."""
    from edgewise.bench.estimate import estimate
    from edgewise.targets import load_target

    points, sources = published_points()
    figures, ratios = [], []
    with tempfile.TemporaryDirectory() as scratch:
        counts = {(p["model"], p["input"]): None for p in points}
        for model, shape in counts:
            counts[(model, shape)] = model_counts(model, shape, Path(scratch))
    for p in points:
        e = estimate(load_target(p["target"]), counts[(p["model"], p["input"])], p["precision"], p["power_mode"],
                     include_host=p["measures"] == "model_call")
        ratio = e["latency_s"] * 1e3 / p["published_ms"]
        ratios.append(ratio)
        figures.append(Figure(f"{p['target']} {p['model']} {p['precision']} ({p['measures'].replace('_', ' ')})",
                              ratio, "estimate / published", "estimated", "0.5 to 2",
                              f"{e['latency_s'] * 1e3:.2f} vs {p['published_ms']} ms [{p['source']}]"))
    worst = max(ratios, key=lambda r: abs(math.log(r)))
    boards = sorted({p["target"] for p in points})
    models = sorted({p["model"] for p in points})
    figures += [
        Figure("calibration points", len(points), "points", "published", ">= 8 over >= 3 boards and 3 models",
               f"{len(boards)} boards, {len(models)} models; sources: {', '.join(sorted(sources))}"),
        Figure("worst estimate / published", worst, "ratio", "estimated", "0.5 to 2",
               f"median {statistics.median(ratios):.2f}, range {min(ratios):.2f} to {max(ratios):.2f}"),
        Figure("points within 2x", sum(0.5 <= r <= 2 for r in ratios) / len(ratios), "fraction", "estimated", "1.0"),
    ]
    return figures
