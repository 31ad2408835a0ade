"""4-bit weights side by side with ONNX Runtime's own quantizer: error, agreement, size and speed in one run.

The layer stack is the one ONNX Runtime's MatMulNBits quantizer is made for, 1024-4096-4096-1000
with ReLUs, with heavy-tailed weights (Laplace values, per-row lognormal scales: closer to trained
layers than torch's uniform initialisation). Edgewise's uniform quantizer per layer, per channel
and per block goes through its INT4 export; ONNX Runtime's MatMulNBitsQuantizer (symmetric) quantizes
the float ONNX file of the same network. Both run in ONNX Runtime on this machine's CPU.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.suite import Figure, timed_calls

DIMS = (1024, 4096, 4096, 1000)
SAMPLES = 2048


def _network():
    import torch
    from torch import nn

    rng = np.random.default_rng(0)
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(DIMS):
        linear = nn.Linear(fan_in, fan_out)
        rows = np.exp(rng.normal(0, 1, (fan_out, 1)))
        weight = rng.laplace(size=(fan_out, fan_in)) * rows / np.sqrt(fan_in) / 2
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


def _as_matmuls(model):
    """The float graph with every Gemm (transB, as torch exports nn.Linear) written as MatMul + Add: the pattern
    ONNX Runtime's MatMulNBits quantizer quantizes (it skips Gemm nodes)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type != "Gemm":
            nodes.append(node)
            continue
        weight = inits[node.input[1]]
        transposed = numpy_helper.to_array(weight).T.copy()
        weight.CopyFrom(numpy_helper.from_array(transposed, weight.name))
        product = f"{node.output[0]}_matmul"
        nodes.append(helper.make_node("MatMul", [node.input[0], node.input[1]], [product], name=f"{node.name}_mm"))
        nodes.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_add"))
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def _session(path: Path, fast_export: bool):
    import onnxruntime as ort

    from edgewise.board.session import open_session, session_options

    if fast_export:
        return open_session(path, fast=True, threads=1)
    return ort.InferenceSession(str(path), session_options(threads=1), providers=["CPUExecutionProvider"])


def _measure(name: str, path: Path, ours: bool, x: np.ndarray, reference: np.ndarray) -> dict:
    session = _session(path, ours)
    feed = session.get_inputs()[0].name
    out = session.run(None, {feed: x})[0]
    one = x[:1]
    latency = float(np.median(timed_calls(lambda: session.run(None, {feed: one}), min_iterations=30,
                                          min_seconds=1.0)))
    return {"name": name, "rel_max_error": float(np.abs(out - reference).max() / np.abs(reference).max()),
            "rel_rms_error": float(np.sqrt(np.mean((out - reference) ** 2) / np.mean(reference**2))),
            "top1_agreement": float(np.mean(out.argmax(1) == reference.argmax(1))), "bytes": path.stat().st_size,
            "latency_b1_s": latency}


def run() -> list[Figure]:
    """Edgewise per layer, per channel and per block (32, 128) against ONNX Runtime's MatMulNBits at 32 and 128."""
    import onnx
    import torch
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    from edgewise import compress, export

    model = _network()
    x = np.random.default_rng(1).standard_normal((SAMPLES, DIMS[0])).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        float_path = export.to_onnx(model, torch.from_numpy(x[:1]), folder / "float.onnx").path
        rows.append(_measure("float32", float_path, False, x, reference))
        for label, settings in (("Edgewise per layer", {}), ("Edgewise per channel", {"per_channel": True}),
                                ("Edgewise block 32", {"block": 32}), ("Edgewise block 128", {"block": 128})):
            q = compress.quantize(model, "uniform", 4, **settings)
            path = export.to_onnx(q.model, torch.from_numpy(x[:1]), folder / "ours.onnx", q.records).path
            rows.append(_measure(label, path, True, x, reference))
        for block in (32, 128):
            quantizer = MatMulNBitsQuantizer(_as_matmuls(onnx.load(str(float_path))), block_size=block,
                                             is_symmetric=True, accuracy_level=4)
            quantizer.process()
            path = folder / f"ort-{block}.onnx"
            quantizer.model.save_model_to_file(str(path), use_external_data_format=False)
            rows.append(_measure(f"ONNX Runtime MatMulNBits block {block}", path, False, x, reference))
    float_row = rows[0]
    figures = []
    for row in rows[1:]:
        note = (f"RMS error {row['rel_rms_error']:.3f}, top-1 agreement {row['top1_agreement']:.3f}, "
                f"{row['bytes'] / 1e6:.1f} MB, batch 1 "
                f"{row['latency_b1_s'] * 1e3:.2f} ms ({float_row['latency_b1_s'] / row['latency_b1_s']:.1f}x float)")
        target = "<= ONNX Runtime block 32" if row["name"] == "Edgewise block 32" else ""
        figures.append(Figure(f"{row['name']}: relative max error", row["rel_max_error"], "fraction", target=target,
                              note=note))
    ours = next(r for r in rows if r["name"] == "Edgewise block 32")
    peer = next(r for r in rows if r["name"] == "ONNX Runtime MatMulNBits block 32")
    figures.append(Figure("block 32: Edgewise top-1 agreement minus ONNX Runtime's", ours["top1_agreement"] -
                          peer["top1_agreement"], "fraction", target=">= 0"))
    figures.append(Figure("block 32: Edgewise latency over ONNX Runtime's (batch 1, 1 thread)",
                          ours["latency_b1_s"] / peer["latency_b1_s"], "ratio", target="<= 1.1",
                          note=f"{ours['bytes'] / peer['bytes']:.2f}x the file size"))
    return figures
