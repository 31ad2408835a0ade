"""Export: ONNX Runtime latency and file size of float, pruned, 4-bit and pruned+4-bit models, and a 3x4096^2 MLP."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.suite import Figure, timed_calls

MODELS = ["digits-mlp", "digits-cnn", "rail-net"]


def _latency(path: Path, x: np.ndarray) -> tuple[float, float]:
    from edgewise import export
    session = export.open_session(path)
    name = session.get_inputs()[0].name
    times = timed_calls(lambda: session.run(None, {name: x}), min_iterations=100, min_seconds=1.0)
    return statistics.median(times) * 1e3, float(np.percentile(times, 90)) * 1e3


def _variants(name: str):
    from edgewise import compress
    from edgewise.zoo.cache import trained_model
    from edgewise.zoo.data import load_data
    from edgewise.zoo.reference import REFERENCES

    ref_entry = REFERENCES[name]
    data = load_data(ref_entry.data)
    model = trained_model(ref_entry.arch, data, ref_entry.train, 0, ref_entry.arch_args).module
    ref = compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, 10)
    example = data.val.x[:2]
    pruned = compress.prune(model, ref, "lrp", 0.5, ranking=compress.Ranking(scope="layer")).model
    out = {"float32": (model, None), "pruned 50%": (pruned, None)}
    for label, base in (("4-bit", model), ("pruned 50% + 4-bit", pruned)):
        folded, _ = compress.fold_batchnorm(base, example)
        q = compress.quantize(folded, "ecq", 4, lam=0.05)
        out[label] = (q.model, q.records)
    return out, data, model


def run() -> list[Figure]:
    """Median and p90 latency at batch 1 and 64 with the shipped session settings, file sizes, MAC ratios."""
    from edgewise import compress, export
    from edgewise.zoo.models import build_model

    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in MODELS:
            variants, data, original = _variants(name)
            base_macs = compress.measure_cost(original, data.input_shape).macs
            medians = {}
            for label, (module, records) in variants.items():
                path = Path(scratch) / f"{name}-{label.replace(' ', '_').replace('%', '')}.onnx"
                f = export.to_onnx(module, data.val.x[:2], path, records)
                for batch in (1, 64):
                    x = data.test.x[:batch].numpy()
                    median, p90 = _latency(f.path, x)
                    medians[(label, batch)] = median
                    figures.append(Figure(f"{name} {label} batch {batch} median", median, "ms",
                                          note=f"p90 {p90:.3f} ms; file {f.bytes:,} B"))
            pruned_macs = compress.measure_cost(variants["pruned 50%"][0], data.input_shape).macs
            mac_ratio = base_macs / pruned_macs
            for batch in (1, 64):
                speedup = medians[("float32", batch)] / medians[("pruned 50%", batch)]
                figures.append(Figure(f"{name} pruned 50% speed-up / MAC ratio, batch {batch}", speedup / mac_ratio,
                                      "ratio", target=">= 0.7 (CNN)",
                                      note=f"speed-up {speedup:.2f}x, MACs /{mac_ratio:.2f}"))
        torch.manual_seed(0)
        big = build_model("mlp", (1, 64, 64), 4096, hidden=[4096, 4096]).eval()
        q = compress.quantize(big, "uniform", 4)
        x = torch.rand(2, 1, 64, 64)
        float_file = export.to_onnx(big, x, Path(scratch) / "mlp4096.onnx")
        int4_file = export.to_onnx(q.model, x, Path(scratch) / "mlp4096-int4.onnx", q.records)
        for batch in (1, 64):
            xb = torch.rand(batch, 1, 64, 64).numpy()
            f_med, f_p90 = _latency(float_file.path, xb)
            q_med, q_p90 = _latency(int4_file.path, xb)
            figures += [
                Figure(f"MLP 3x4096^2 float32 batch {batch} median", f_med, "ms", note=f"p90 {f_p90:.3f} ms"),
                Figure(f"MLP 3x4096^2 INT4 (MatMulNBits) batch {batch} median", q_med, "ms",
                       note=f"p90 {q_p90:.3f} ms"),
                Figure(f"MLP 3x4096^2 INT4 speed-up, batch {batch}", f_med / q_med, "x",
                       target=">= 5x at batch 1" if batch == 1 else ""),
            ]
        figures.append(Figure("MLP 3x4096^2 file size ratio float32 / INT4", float_file.bytes / int4_file.bytes, "x",
                              note=f"{float_file.bytes:,} vs {int4_file.bytes:,} B"))
    return figures
