"""W4A8 side by side with ONNX Runtime's static int8 quantizer: file size, score in ONNX Runtime, batch 1 and 32 speed.

Models: the zoo's digits CNN and rail net, and torchvision resnet18 and mobilenet_v2 trained here
for a few epochs on rail scenes at 128 px (is there an anomaly on the track?). Each as float32;
pruned (LRP 30%, channels rounded to 8, one epoch of fine-tuning); Edgewise W4A8 of the pruned
model (BatchNorm folded, ECQ 4-bit with two epochs of QAT, activations calibrated on 256 training
samples with each calibrator); and ONNX Runtime's quantize_static (its pre-processing, then QDQ,
per channel, uint8 activations and int8 weights, MinMax over 200 training samples) of the float
and of the pruned model. Every file runs in the session Edgewise ships, one thread; latencies are
medians of 5 rounds taken in turns. The MLP half of the comparison (Edgewise INT4 against ONNX
Runtime's MatMulNBits quantizer at equal block size) is the topic int4_peers.
"""

from __future__ import annotations

import functools
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.suite import Figure, timed_calls
from edgewise.base.atomic import write_json

OUT = Path("runs/bench")
CALIBRATORS = ("max", "percentile", "entropy")
ROUNDS = 5
PEER_SAMPLES = 200
W4A8_SAMPLES = 256


def _anomaly_scenes():
    """Rail scenes at 128 px labelled by whether an anomaly lies on the track: a classification set for torchvision
    backbones."""
    import torch

    from edgewise.zoo.data import RailData, load_data
    from edgewise.zoo.dataset import Dataset, Split
    from edgewise.zoo.rail import ANOMALY

    scenes = load_data(RailData(size=128, train=256, val=64, test=128))

    def labelled(split: Split) -> Split:
        return Split(split.x, (split.y == ANOMALY).flatten(1).any(1).to(torch.int64))

    return Dataset("rail-anomaly", "classification", ("clear", "anomaly"), labelled(scenes.train),
                   labelled(scenes.val), labelled(scenes.test))


def _models():
    """(name, trained float model, data) for every model compared."""
    from edgewise.zoo.cache import trained_model
    from edgewise.zoo.data import load_data
    from edgewise.zoo.models import build_model
    from edgewise.zoo.reference import REFERENCES
    from edgewise.zoo.training import TrainConfig, fit

    for name in ("digits-cnn", "rail-net"):
        ref = REFERENCES[name]
        data = load_data(ref.data)
        yield name, trained_model(ref.arch, data, ref.train, 0, ref.arch_args).module, data
    scenes = _anomaly_scenes()
    for arch in ("resnet18", "mobilenet_v2"):
        import torch

        torch.manual_seed(0)
        model = build_model(f"torchvision:{arch}", scenes.input_shape, scenes.num_classes)
        fit(model, scenes, TrainConfig(epochs=3, lr=1e-3, patience=3))
        yield f"{arch} (rail anomaly, 128 px)", model.eval(), scenes


def _quantize_static(source: Path, target: Path, data) -> None:
    """ONNX Runtime's own static quantization of `source`, as its documentation does it for CPUs."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnx.load(str(source)).graph.input[0].name
    samples = data.train.x[:PEER_SAMPLES].numpy()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = [{name: samples[i:i + 1]} for i in range(len(samples))]

        def get_next(self):
            return self.left.pop() if self.left else None

    pre = target.with_suffix(".pre.onnx")
    quant_pre_process(str(source), str(pre))
    quantize_static(str(pre), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def _files(name: str, model, data, scratch: Path) -> dict[str, Path]:
    """Every file compared for one model, by its row label."""
    from edgewise import compress, export
    from edgewise.compress.quant.qat import train_quantized
    from edgewise.compress.ranking import Ranking
    from edgewise.zoo.training import TrainConfig, evaluate, fit

    example = data.train.x[:2]
    ref = compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, 8)
    pruned = compress.prune(model, ref, "lrp", 0.3, ranking=Ranking(round_to=8),
                            finetune=lambda m: fit(m, data, TrainConfig(epochs=1, lr=1e-3, patience=1))).model
    folded, _ = compress.fold_batchnorm(pruned, example)
    train = functools.partial(train_quantized, x=data.train.x, y=data.train.y, epochs=2, patience=2,
                              score=lambda m: evaluate(m, data.val, data.task)["score"])
    quantized = compress.quantize(folded, "ecq", 4, lam=0.05, train=train)
    files = {"float32": export.to_onnx(model, example, scratch / "float.onnx").path,
             "pruned": export.to_onnx(pruned, example, scratch / "pruned.onnx").path}
    for calibrator in CALIBRATORS:
        files[f"Edgewise W4A8 of pruned ({calibrator})"] = export.to_w4a8(
            quantized.model, example, scratch / f"w4a8-{calibrator}.onnx", quantized.records,
            data.train.x[:W4A8_SAMPLES].numpy(), calibrator).path
    for base in ("float32", "pruned"):
        target = scratch / f"ort-{base}.onnx"
        _quantize_static(files[base], target, data)
        files[f"ONNX Runtime quantize_static of {base}"] = target
    return files


def _latencies(files: dict[str, Path], data) -> dict[str, dict[int, float]]:
    """Median seconds per run at batch 1 and 32 of every file, the rounds taken in turns."""
    from edgewise.export import open_session

    sessions = {label: open_session(path, threads=1) for label, path in files.items()}
    times: dict[str, dict[int, list[float]]] = {label: {1: [], 32: []} for label in files}
    for _ in range(ROUNDS):
        for batch in (1, 32):
            x = data.test.x[:batch].numpy()
            for label, session in sessions.items():
                feed = {session.get_inputs()[0].name: x}
                times[label][batch].append(statistics.median(timed_calls(lambda s=session, f=feed: s.run(None, f),
                                                                         20, 0.2)))
    return {label: {b: statistics.median(t) for b, t in by_batch.items()} for label, by_batch in times.items()}


def _study(name: str, model, data) -> list[dict[str, Any]]:
    from edgewise.stages.export import shipped_score

    with tempfile.TemporaryDirectory() as scratch:
        files = _files(name, model, data, Path(scratch))
        latency = _latencies(files, data)
        return [{"model": name, "file": label, "bytes": path.stat().st_size, "score": shipped_score(path, data),
                 "score_name": "mIoU" if data.task == "segmentation" else "accuracy",
                 "batch1_s": latency[label][1], "batch32_s": latency[label][32]} for label, path in files.items()]


def run() -> list[Figure]:
    """The peer table for every model, and per model Edgewise W4A8 (max) against quantize_static of the pruned
    model: latency ratios at batch 1 and 32, size ratio, score difference."""
    rows, figures = [], []
    for name, model, data in _models():
        table = _study(name, model, data)
        rows += table
        write_json(OUT / "w4a8-peers-table.json", rows)  # after every model: a long run keeps what it measured
        by = {r["file"]: r for r in table}
        for r in table:
            figures.append(Figure(f"{name}: {r['file']}", r["batch1_s"] * 1e6, "us at batch 1",
                                  note=f"{r['batch32_s'] * 1e3:.3g} ms at batch 32; {r['bytes']:,} B; "
                                       f"{r['score_name']} {r['score']:.4f} in ONNX Runtime"))
        mine, peer = by["Edgewise W4A8 of pruned (max)"], by["ONNX Runtime quantize_static of pruned"]
        figures += [
            Figure(f"{name}: W4A8 speed-up over quantize_static, batch 1", peer["batch1_s"] / mine["batch1_s"], "x",
                   target=">= 1"),
            Figure(f"{name}: W4A8 speed-up over quantize_static, batch 32", peer["batch32_s"] / mine["batch32_s"],
                   "x", target=">= 1"),
            Figure(f"{name}: W4A8 file smaller than quantize_static's", peer["bytes"] / mine["bytes"], "x",
                   target="> 1"),
            Figure(f"{name}: W4A8 score minus quantize_static's", mine["score"] - peer["score"], "points (fraction)",
                   target=">= -0.005"),
        ]
    write_json(OUT / "w4a8-peers-table.json", rows)
    return figures
