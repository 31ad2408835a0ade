"""Pruning coverage: public architectures pruned at rate 0.3 by Edgewise and by torch-pruning, side by side.

Every torchvision classification and segmentation model up to 150 M parameters, one model of each
timm family the kit is asked to cover, and two detectors (ultralytics YOLOv8n from its yaml,
torchvision SSDlite through its heads), all built without weights (BatchNorm statistics taken from
the inputs), is pruned at rate 0.3 with Edgewise's l1 and lrp (detectors: relevance of their own
strongest detections) and with torch-pruning's own MetaPruner (L1 group magnitude, its default
per-layer ratio), each case in a fresh process with a time limit. A case is clean when it prunes, keeps the output
shape, leaves no layer below 10% of its channels, gives an output that still varies with the
input (no collapse), and exports to ONNX with ONNX Runtime matching torch. Select models with
EDGEWISE_COVERAGE (a regular expression); the table is written to runs/bench/coverage-table.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

RATE = 0.3
MAX_PARAMS = 150e6
TIMEOUT_S = 600
NARROWEST = 0.10  # a layer kept below this share of its channels counts as collapsed
FIXED_224 = re.compile(r"^(vit|swin|maxvit|deit|mobilevit)")  # architectures with a fixed input size
TIMM = ("resnet18", "convnext_atto", "efficientnet_b0", "mobilenetv3_small_100", "regnetx_002", "ghostnet_100",
        "repvgg_a0", "vit_tiny_patch16_224", "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "mobilevit_xxs")
DETECTION = ("yolov8n", "ssdlite320_mobilenet_v3_large")
TOOLS = (("edgewise", "l1"), ("edgewise", "lrp"), ("torch-pruning", "l1"))
OUT = Path("runs/bench")


def cases() -> list[tuple[str, str]]:
    """(source, model name) of every architecture covered: torchvision classification and segmentation models, timm
    families, detectors."""
    from torchvision import models

    found = [("classification", n) for n in models.list_models(module=models)]
    found += [("segmentation", n) for n in models.list_models(module=models.segmentation)]
    found += [("timm", n) for n in TIMM] + [("detection", n) for n in DETECTION]
    pattern = re.compile(os.environ.get("EDGEWISE_COVERAGE", ".*"))
    return [(s, n) for s, n in found if pattern.search(n)]


def build(source: str, name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """The architecture without weights, in eval mode, and a batch of 4 inputs at a size it takes."""
    from torchvision import models

    torch.manual_seed(0)
    if source == "segmentation":
        model = models.get_model(name, weights=None, weights_backbone=None, num_classes=21)
    elif source == "timm":
        import timm

        model = timm.create_model(name, pretrained=False)
    elif name == "yolov8n":
        from ultralytics.nn.tasks import DetectionModel

        model = DetectionModel("yolov8n.yaml", verbose=False)
    elif source == "detection":
        from edgewise.compress.detectors import DetectorHeads

        model = DetectorHeads(models.get_model(name, weights=None, weights_backbone=None))
    else:
        model = models.get_model(name, weights=None)
    for module in model.modules():  # zero-initialised heads (ViT's) would make every output 0: nothing to check
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.nn.Parameter) and weight.dim() > 1 and not weight.any():
            torch.nn.init.normal_(weight, std=0.02)
    size = {"inception_v3": 299, "mobilevit_xxs": 256, "ssdlite320_mobilenet_v3_large": 320}.get(
        name, 224 if FIXED_224.match(name) else 128)
    x = torch.rand(4, 3, size, size)
    _calibrate_batchnorm(model, x)
    return model.eval(), x


def _calibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor) -> None:
    """BatchNorm statistics of the inputs themselves: with the initial ones (mean 0, variance 1) signals vanish or
    explode through a deep random network (EfficientNet's output then varies by 1e-15), and no check means much."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def _degenerate(before: torch.Tensor, after: torch.Tensor) -> str:
    """Why a pruned output no longer behaves like a network's output ('' when it does)."""
    if not torch.isfinite(after).all():
        return "output not finite"
    spread_before, spread_after = before.std(0).mean().item(), after.std(0).mean().item()
    if spread_after <= 1e-3 * spread_before:
        return f"output no longer varies with the input ({spread_after:.2e} vs {spread_before:.2e})"
    scale = after.abs().mean().item() / max(before.abs().mean().item(), 1e-30)
    if scale < 1e-3:
        return f"output shrank {1 / scale:,.0f}-fold"
    return ""


def _narrowest(original: torch.nn.Module, pruned: torch.nn.Module) -> tuple[str, float]:
    from edgewise.compress.layers import output_axis, weight_layers

    before, after = weight_layers(original), weight_layers(pruned)
    shares = {n: after[n].weight.shape[output_axis(after[n])] / m.weight.shape[output_axis(m)]
              for n, m in before.items() if n in after}
    name = min(shares, key=shares.get)
    return name, shares[name]


def _onnx_parity(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Relative max difference of ONNX Runtime against torch on `x` (the scored output)."""

    from edgewise.board.compare import relative_difference
    from edgewise.compress.outputs import scored_output
    from edgewise.export import open_session, to_onnx

    with scored_output(model.eval()) as scored, tempfile.TemporaryDirectory() as scratch:
        path = to_onnx(scored, x[:1], Path(scratch) / "m.onnx").path
        session = open_session(path)
        got = session.run(None, {session.get_inputs()[0].name: x[:1].numpy()})[0]
        with torch.no_grad():
            want = scored(x[:1]).numpy()
    return relative_difference(got, want)


def _torch_pruning(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    import torch_pruning as tp

    from edgewise.compress.graph import output_layers
    from edgewise.compress.outputs import pick

    modules = dict(model.named_modules())
    ignored = [modules[n] for n in output_layers(model, x[:1])]
    pruner = tp.pruner.MetaPruner(model, x[:1], importance=tp.importance.GroupMagnitudeImportance(p=1),
                                  pruning_ratio=RATE, ignored_layers=ignored, output_transform=pick)
    pruner.step()
    return model


def check(source: str, name: str, tool: str, criterion: str) -> dict[str, Any]:
    """One case, in this process: prune, then check shape, narrowest layer, output and ONNX parity."""
    import copy

    from edgewise import compress
    from edgewise.compress.detectors import detection_output
    from edgewise.compress.outputs import pick

    model, x = build(source, name)
    scored = detection_output(model) if source == "detection" else None
    params = sum(p.numel() for p in model.parameters())
    row: dict[str, Any] = {"source": source, "model": name, "tool": tool, "criterion": criterion, "params": params}
    if params > MAX_PARAMS:
        return {**row, "status": "skipped", "why": f"{params / 1e6:.0f} M parameters > 150 M"}
    with torch.no_grad():
        before = pick(model(x), scored)
    start = time.perf_counter()
    try:
        if tool == "edgewise":
            ref = compress.ReferenceSamples(x, torch.randint(0, before.shape[1], (len(x),)),
                                            "segmentation" if source == "segmentation" else "classification")
            if source == "segmentation":
                ref = compress.ReferenceSamples(x, before.argmax(1), "segmentation")
            if source == "detection":
                ref = compress.ReferenceSamples.for_detection(x)
            pruned = compress.prune(model, ref, criterion, RATE).model
        else:
            pruned = _torch_pruning(copy.deepcopy(model), x)
    except Exception as exc:  # every failure is a row of the table, with its one line
        kind = "refused" if isinstance(exc, compress.PruningError) else "failed"
        return {**row, "status": kind, "why": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                "seconds": time.perf_counter() - start}
    seconds = time.perf_counter() - start
    with torch.no_grad():
        after = pick(pruned.eval()(x), scored)
    row.update(seconds=seconds, params_after=sum(p.numel() for p in pruned.parameters()))
    if after.shape != before.shape:
        return {**row, "status": "wrong shape", "why": f"{tuple(before.shape)} -> {tuple(after.shape)}"}
    row["narrowest_layer"], row["narrowest_share"] = _narrowest(model, pruned)
    why = _degenerate(before, after)
    if why:
        return {**row, "status": "degenerate", "why": why}
    if row["narrowest_share"] < NARROWEST:
        return {**row, "status": "collapsed", "why": f"{row['narrowest_layer']} keeps "
                                                     f"{row['narrowest_share']:.1%} of its channels"}
    try:
        row["onnx_rel_diff"] = _onnx_parity(pruned, x)
    except Exception as exc:
        return {**row, "status": "no onnx", "why": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    ok = row["onnx_rel_diff"] < 1e-3
    return {**row, "status": "clean" if ok else "onnx differs", "why": "" if ok else f"{row['onnx_rel_diff']:.1e}"}


def _child(source: str, name: str, tool: str, criterion: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.topics.coverage", source, name, tool, criterion]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return {"source": source, "model": name, "tool": tool, "criterion": criterion, "status": "timeout",
                "why": f"over {TIMEOUT_S} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"source": source, "model": name, "tool": tool, "criterion": criterion, "status": "crashed",
                "why": f"exit {done.returncode}: {last[:300]}"}
    return json.loads(lines[-1])


def lrp_cost() -> list[Any]:
    """LRP scoring time per sample against one plain forward+backward, resnet50 at 224 px, batch 4 (medians)."""
    from torchvision import models

    from benchmarks.suite import Figure, median_seconds
    from edgewise.compress import ReferenceSamples
    from edgewise.compress.layers import weight_layers
    from edgewise.compress.relevance import layer_relevance

    torch.manual_seed(0)
    model = models.resnet50(weights=None).eval()
    x = torch.rand(4, 3, 224, 224)
    ref = ReferenceSamples(x, torch.arange(4), batch_size=4)
    names = set(weight_layers(model))

    def plain() -> None:
        model.zero_grad()
        model(x)[torch.arange(4), torch.arange(4)].sum().backward()

    lrp = median_seconds(lambda: layer_relevance(model, ref, names), repeats=3) / len(x)
    base = median_seconds(plain, repeats=3) / len(x)
    return [Figure("resnet50 224 px: LRP scores per sample", lrp * 1e3, "ms", note="every conv/linear layer"),
            Figure("resnet50 224 px: forward+backward per sample", base * 1e3, "ms"),
            Figure("resnet50 224 px: LRP / forward+backward", lrp / base, "x")]


def run() -> list[Any]:
    """Every case in a fresh process; the counts per tool as figures, the whole table as JSON; the LRP cost."""
    from benchmarks.suite import Figure
    from edgewise.base.atomic import write_json

    rows = []
    for source, name in cases():
        for tool, criterion in TOOLS:
            rows.append(_child(source, name, tool, criterion))
            write_json(OUT / "coverage-table.json", rows)  # after every case: a long run can be read as it goes
    figures = []
    for tool, criterion in TOOLS:
        mine = [r for r in rows if (r["tool"], r["criterion"]) == (tool, criterion) and r["status"] != "skipped"]
        clean = sum(r["status"] == "clean" for r in mine)
        figures.append(Figure(f"{tool} {criterion}: clean", clean, "models", note=f"of {len(mine)}"))
        for status in sorted({r["status"] for r in mine} - {"clean"}):
            figures.append(Figure(f"{tool} {criterion}: {status}", sum(r["status"] == status for r in mine),
                                  "models"))
    return figures + lrp_cost()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one coverage case, printed as a JSON line")
    parser.add_argument("source")
    parser.add_argument("model")
    parser.add_argument("tool")
    parser.add_argument("criterion")
    options = parser.parse_args()
    print(json.dumps(check(options.source, options.model, options.tool, options.criterion)))
