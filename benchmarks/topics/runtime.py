"""Runtime: integer-kernel latency per mode against numpy and ONNX Runtime, representation sizes, emulated costs."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.suite import Figure, timed_calls

SHAPES = {"digits MLP 64-256-128-10": None, "MLP 784-1024-1024-10": [784, 1024, 1024, 10],
          "MLP 3x4096x4096": [4096, 4096, 4096, 4096]}


def _median_ms(fn, iterations: int = 20, seconds: float = 0.5) -> float:
    return statistics.median(timed_calls(fn, min_iterations=iterations, min_seconds=seconds, warmup=2)) * 1e3


def _network(label: str):
    from edgewise import compress
    from edgewise.zoo.cache import trained_model
    from edgewise.zoo.data import load_data
    from edgewise.zoo.models import build_model
    from edgewise.zoo.reference import REFERENCES

    sizes = SHAPES[label]
    if sizes is None:
        ref = REFERENCES["digits-mlp"]
        data = load_data(ref.data)
        model = trained_model(ref.arch, data, ref.train, 0, ref.arch_args).module
        calibration = data.train.x.numpy()
        shape = data.input_shape
    else:
        torch.manual_seed(0)
        side = int(np.sqrt(sizes[0]))
        shape = (1, side, side)
        model = build_model("mlp", shape, sizes[-1], hidden=sizes[1:-1]).eval()
        calibration = np.random.default_rng(0).random((64, *shape)).astype(np.float32)
    return compress.quantize(model, "ecq", 4, lam=0.1), model, calibration, shape


def run() -> list[Figure]:
    """Per network: kernel modes vs numpy float32 GEMM vs ORT float32 and INT4; storage; emulated costs."""
    from edgewise import compress, export
    from edgewise.compress.size import packed_bytes
    from edgewise.runtime import IntegerMLP, size
    from edgewise.runtime.representations import REPRESENTATIONS

    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as scratch:
        for label in SHAPES:
            q, model, calibration, shape = _network(label)
            records = list(q.records.values())
            mlp = IntegerMLP.from_records(records, calibration)
            weights = [r.dequantize() for r in records]
            float_file = export.to_onnx(model, torch.from_numpy(calibration[:2]), Path(scratch) / "f.onnx")
            int4_file = export.to_onnx(q.model, torch.from_numpy(calibration[:2]), Path(scratch) / "q.onnx",
                                       q.records)
            ort_float, ort_int4 = export.open_session(float_file.path), export.open_session(int4_file.path)
            big = label.startswith("MLP 3x4096")
            for batch in (1, 64):
                x = np.random.default_rng(1).random((batch, *shape)).astype(np.float32)
                flat = x.reshape(batch, -1)

                def numpy_float32(flat=flat, weights=weights) -> None:
                    a = flat
                    for i, w in enumerate(weights):
                        a = a @ w.T
                        if i < len(weights) - 1:
                            a = np.maximum(a, 0)

                base = _median_ms(numpy_float32)
                figures.append(Figure(f"{label} numpy float32 matmul, batch {batch}", base, "ms"))
                modes = ("fast",) if (big and batch > 1) else ("fast", "bins", "bitplanes")
                for mode in modes:
                    ms = _median_ms(lambda mode=mode, x=x, mlp=mlp: mlp.run(x, mode),
                                    iterations=5 if mode != "fast" else 20)
                    target = ">= numpy float32 speed" if mode == "fast" else ""
                    figures.append(Figure(f"{label} kernel {mode}, batch {batch}", ms, "ms", target=target,
                                          note=f"{base / ms:.2f}x numpy float32" if mode == "fast" else ""))
                for name, session in (("ORT float32", ort_float), ("ORT INT4 MatMulNBits", ort_int4)):
                    ms = _median_ms(lambda session=session, x=x: session.run(None, {"x": x}))
                    figures.append(Figure(f"{label} {name}, batch {batch}", ms, "ms"))
            if label.startswith("digits"):
                stream = compress.encode(q.records, compress.floats_of(q.model, q.records))
                levels_bytes = {kind: sum(size(kind, r.levels) for r in records) for kind in REPRESENTATIONS}
                for kind, value in levels_bytes.items():
                    figures.append(Figure(f"digits MLP (ECQ lambda 0.1) weights as {kind}", value, "B"))
                figures += [
                    Figure("digits MLP packed 4-bit (with float32 biases)", packed_bytes(q.model, q.records), "B"),
                    Figure("digits MLP NNCodec bitstream (with biases)", len(stream.data), "B"),
                ]
                for target in ("fantastic4-fpga", "fantastic4-asic"):
                    total = mlp.costs(target)["total"]
                    figures += [
                        Figure(f"digits MLP on {target}: latency", total["latency_s"] * 1e9, "ns", kind="emulated"),
                        Figure(f"digits MLP on {target}: energy / inference", total["energy_per_inference_j"] * 1e9,
                               "nJ", kind="emulated"),
                    ]
                figures.append(Figure("digits MLP additions saved by zero weights",
                                      mlp.costs("fantastic4-asic")["total"]["additions_saved"], "fraction",
                                      kind="emulated", note=f"sparsity {q.summary()['sparsity']:.1%}"))
    return figures
