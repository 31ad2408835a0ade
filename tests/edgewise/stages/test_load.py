"""A model brought as ONNX with an integer input (bytes, tokens) goes through a recipe: scored, counted, benchmarked."""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgewise.pipeline import run_recipe
from edgewise.recipe import parse_recipe


def _byte_classifier(path):
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gather", ["table", "bytes"], ["embedded"]),
             helper.make_node("ReduceMean", ["embedded", "axes"], ["pooled"], keepdims=0),
             helper.make_node("MatMul", ["pooled", "w"], ["logits"])]
    graph = helper.make_graph(
        nodes, "bytes", [helper.make_tensor_value_info("bytes", TensorProto.INT32, ["N", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(rng.standard_normal((256, 8)).astype(np.float32), "table"),
         numpy_helper.from_array(np.array([1], np.int64), "axes"),
         numpy_helper.from_array(rng.standard_normal((8, 3)).astype(np.float32), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


def test_an_integer_input_model_from_a_recipe(tmp_path):
    _byte_classifier(tmp_path / "bytes.onnx")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "bytes.npz", x=rng.integers(0, 256, (60, 16)).astype(np.int32), y=rng.integers(0, 3, 60))
    data = {"name": "npz", "path": str(tmp_path / "bytes.npz")}
    recipe = parse_recipe({"name": "ints", "models": [{
        "name": "bytes", "onnx": str(tmp_path / "bytes.onnx"), "data": data,
        "export": {}, "bench": {"targets": ["x86-host", "jetson-orin-nx"], "duration_s": 0.05, "iterations": 5}}]})
    result = run_recipe(recipe, tmp_path / "runs")
    row = result.rows[0]
    assert row["kind"] == "given" and row["params"] == 256 * 8 + 8 * 3, "weights, not the int64 axes constant"
    assert row["macs"] == 8 * 3, "the MatMul at one sample"
    host = next(r for r in result.bench if r["target"] == "x86-host")
    assert host["inputs"][0]["dtype"] == "int32" and host["inputs"][0]["shape"] == [1, 16]
    assert host["latency"]["kind"] == "measured"


def test_an_onnx_model_is_pruned_quantized_and_exported_from_a_recipe(tmp_path):
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval()
    torch.onnx.export(net, (torch.rand(2, 1, 8, 8),), str(tmp_path / "net.onnx"), dynamo=False, opset_version=13,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "d.npz", x=rng.random((90, 1, 8, 8), dtype=np.float32), y=np.arange(90) % 3)
    recipe = parse_recipe({"name": "onnx-in", "models": [{
        "name": "net", "onnx": str(tmp_path / "net.onnx"), "data": {"name": "npz", "path": str(tmp_path / "d.npz")},
        "prune": {"criterion": "l1", "rate": 0.25}, "quantize": {"method": "uniform", "bits": 4}, "export": {}}]})
    result = run_recipe(recipe, tmp_path / "runs")
    kinds = [r["kind"] for r in result.rows]
    assert kinds[:3] == ["given", "pruned", "quantized"]
    pruned = next(r for r in result.rows if r["kind"] == "pruned")
    assert pruned["params"] < result.rows[0]["params"]
    shipped = onnx.load(str(result.root / "net" / "export" / "model.onnx"))
    assert any(i.data_type == TensorProto.INT4 for i in shipped.graph.initializer)
    # beside the 4-bit file, its variant for a plain ONNX Runtime session (4-bit weights stored as float), listed
    manifest = json.loads((result.root / "manifest.json").read_text())
    (stage,) = [s for s in manifest["stages"] if s["id"].endswith("/export")]
    variant = result.root / "net" / "export" / "model.plain.onnx"
    assert stage["metrics"]["model.onnx"]["plain_variant"] == {"file": variant.name, "bytes": variant.stat().st_size}
    assert not any(i.data_type == TensorProto.INT4 for i in onnx.load(str(variant)).graph.initializer)
    assert "plain_variant" not in stage["metrics"]["model-given.onnx"]  # a float file: every session loads it alike
