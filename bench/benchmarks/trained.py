"""Trained networks from PyPI wheels through the kit: pruning criteria and 4-bit quantizers against the peers.

The network is PP-OCR's text-orientation classifier (ch_ppocr_mobile_v2.0_cls, a trained
MobileNetV3-style CNN shipped as ONNX in the rapidocr-onnxruntime wheel). It goes in as ONNX
(export.onnx_import) and is scored on text lines the kit renders (textlines.py) with exact labels:
upright (0) or turned by 180 degrees. Nothing is downloaded: without the wheel the topic says so.
Per criterion (lrp, l1, taylor, random, and torch-pruning's magnitude pruner as the peer) and rate,
the test accuracy without and with a short fine-tuning; per 4-bit quantizer (uniform per channel,
block-32, ECQ, ECQx) the accuracy; and ONNX Runtime latency of the source file and of its pruned
export.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.base.atomic import write_json
from edgewise.bench.suite import Figure, timed_calls

CRITERIA = ("lrp", "l1", "taylor", "random")
RATES = (0.1, 0.2, 0.3)
QUANTIZERS = (("uniform per channel", "uniform", {"per_channel": True}), ("uniform block-32", "uniform",
              {"block": 32}), ("ecq", "ecq", {}), ("ecqx", "ecqx", {}))
OUT = Path("runs/bench")


def _wheel_model(package: str, relative: str) -> Path | None:
    from importlib.util import find_spec

    spec = find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / relative
    return path if path.is_file() else None


def _data(scratch: Path):
    from edgewise.bench.benchmarks.textlines import orientation_set
    from edgewise.zoo.data import NpzData, load_data

    arrays = {}
    for split, count, seed in (("train", 800, 1), ("val", 200, 2), ("test", 600, 3)):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = orientation_set(count, seed=seed)
    path = scratch / "orientation.npz"
    np.savez(path, **arrays)
    return load_data(NpzData(path=path, class_names=("0", "180")))


def _torch_pruning(module, data, rate: float):
    """torch-pruning's own magnitude pruner (L1, global off) at `rate` of each layer's channels, the output layer
    left alone: what a user of that library would run on the converted module."""
    import copy

    import torch
    import torch_pruning as tp

    work = copy.deepcopy(module)
    example = data.test.x[:2]
    last = [m for m in work.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)][-1:]
    pruner = tp.pruner.MetaPruner(work, example, importance=tp.importance.MagnitudeImportance(p=1),
                                  pruning_ratio=rate, ignored_layers=last)
    pruner.step()
    with torch.no_grad():
        work(example)
    return work


def run() -> list[Figure]:
    """The orientation classifier's table (also runs/bench/trained.json), or one figure saying why it cannot run."""
    source = _wheel_model("rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx")
    if source is None:
        return [Figure("trained: skipped", 0, "", kind="unavailable",
                       note="pip install rapidocr-onnxruntime (the wheel ships the trained ONNX models)")]
    from edgewise import compress, export
    from edgewise.export.onnx_import import onnx_to_torch
    from edgewise.stages.export import shipped_score
    from edgewise.zoo.training import TrainConfig, evaluate, fit

    figures: list[Figure] = []
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        data = _data(Path(scratch))
        module = onnx_to_torch(source, data.test.x[:4].numpy())
        float_score = shipped_score(source, data)
        rows.append({"model": "float (source ONNX)", "score": float_score})
        figures.append(Figure("orientation float accuracy", float_score, "accuracy", note="source file in ORT"))
        ref = compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, 20)
        tune = TrainConfig(epochs=3, lr=1e-4, patience=3)

        def score(m) -> float:
            return evaluate(m, data.test, data.task)["score"]

        def finetuned(m) -> float:
            fit(m, data, tune, label="fine-tune")
            return score(m)

        pruned_example = None
        for rate in RATES:
            for criterion in CRITERIA:
                result = compress.prune(module, ref, criterion, rate)
                before = score(result.model)
                after = finetuned(result.model)
                pruned_example = pruned_example or result.model
                rows.append({"model": f"{criterion} {rate:.0%}", "params": result.after.params,
                             "macs": result.after.macs, "score": before, "score_finetuned": after})
                figures.append(Figure(f"{criterion} {rate:.0%}", before, "accuracy",
                                      note=f"{after:.3f} after 3 epochs FT; params {result.after.params:,}"))
            try:
                peer = _torch_pruning(module, data, rate)
                before, after = score(peer), finetuned(peer)
                params = sum(p.numel() for p in peer.parameters())
                rows.append({"model": f"torch-pruning l1 {rate:.0%}", "params": params, "score": before,
                             "score_finetuned": after})
                figures.append(Figure(f"torch-pruning l1 {rate:.0%}", before, "accuracy",
                                      note=f"{after:.3f} after 3 epochs FT; params {params:,}"))
            except Exception as exc:  # the peer's own failure on this graph is the finding
                reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
                rows.append({"model": f"torch-pruning l1 {rate:.0%}", "failed": reason})
                figures.append(Figure(f"torch-pruning l1 {rate:.0%}", 0, "accuracy", kind="failed", note=reason))
        for label, method, settings in QUANTIZERS:
            quantized = compress.quantize(module, method, 4, ref=ref, **settings)
            value = score(quantized.model)
            rows.append({"model": f"{label} 4-bit", "score": value})
            figures.append(Figure(f"{label} 4-bit", value, "accuracy", note="no QAT"))
        session = export.open_session(source)
        x1 = data.test.x[:1].numpy()
        name = session.get_inputs()[0].name
        source_ms = 1e3 * float(np.median(timed_calls(lambda: session.run(None, {name: x1}))))
        pruned_path = Path(scratch) / "pruned.onnx"
        export.to_onnx(pruned_example, data.test.x[:1], pruned_path)
        pruned_session = export.open_session(pruned_path)
        pruned_ms = 1e3 * float(np.median(timed_calls(lambda: pruned_session.run(None, {name: x1}))))
        figures.append(Figure("source ONNX latency, batch 1", source_ms, "ms", note="ONNX Runtime CPU, median"))
        figures.append(Figure(f"pruned ({RATES[0]:.0%} lrp) export latency, batch 1", pruned_ms, "ms",
                              note="ONNX Runtime CPU, median"))
    write_json(OUT / "trained-orientation.json", {"model": str(source), "scoring": "accuracy on 600 rendered text "
                                                  "lines, half turned by 180 degrees", "rows": rows})
    return figures
