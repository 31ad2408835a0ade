"""Latency, the memory probe and a bundle's run.py open the same optimized graph of a 4-bit CNN."""

import os
import subprocess
import sys

import numpy as np
import onnx
import torch

from edgewise import compress, export
from edgewise.bench.inputs import Inputs
from edgewise.bench.latency import onnx_runner
from edgewise.bench.memory import onnx_peak_memory
from edgewise.zoo.models import build_model


def _graph(path):
    model = onnx.load(str(path))
    return [n.op_type for n in model.graph.node], sorted((i.name, tuple(i.dims)) for i in model.graph.initializer)


def test_every_measurement_runs_the_graph_we_ship(tmp_path, monkeypatch):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    monkeypatch.setenv("EDGEWISE_OPTIMIZED_GRAPHS", str(graphs))
    torch.manual_seed(0)
    cnn = build_model("lenet", (1, 8, 8), 10).eval()
    q = compress.quantize(cnn, "uniform", 4)
    onnx_file = export.to_onnx(q.model, torch.rand(2, 1, 8, 8), tmp_path / "cnn.onnx", q.records)
    x = np.random.default_rng(0).random((1, 1, 8, 8)).astype(np.float32)
    onnx_runner(onnx_file.path, {"x": x})()  # latency (this process)
    onnx_peak_memory(onnx_file.path, Inputs({"x": x}, []).save(tmp_path / "x.npz"), runs=1)  # a fresh child
    with torch.no_grad():
        expected = q.model(torch.from_numpy(x)).numpy()
    bundle = export.bundle(onnx_file.path, tmp_path / "bundle", name="cnn", probe_input=x, probe_output=expected,
                           trtexec=["trtexec"])
    done = subprocess.run([sys.executable, "run.py", "--backend", "onnxruntime", "--duration", "0.05",
                           "--iterations", "3"], cwd=bundle, env=os.environ, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    saved = sorted(graphs.iterdir())
    assert len(saved) == 3, "latency, memory and run.py each opened one session"
    first = _graph(saved[0])
    assert all(_graph(p) == first for p in saved[1:])
    ops = first[0]
    assert "DequantizeLinear" not in ops, "4-bit conv weights are dequantized once at load, in every place"
    assert ops.count("MatMulNBits") == 2, "4-bit linear layers run fused"
