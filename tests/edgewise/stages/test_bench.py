"""The bench stage takes a board's result.json (board_results) as measured latency, memory and energy, each beside the
estimate it replaces."""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgewise.pipeline import run_recipe
from edgewise.recipe import parse_recipe
from edgewise.report.figures import energy_text, latency_text, memory_text

RESULT = {  # what a bundle's run.py writes on an Orin NX (edgewise.board.runner)
    "format": "edgewise-bundle-result/1", "bundle": "m", "model": "model.onnx", "kind": "measured",
    "backend": "tensorrt", "device": {"machine": "aarch64"},
    "board": {"power_mode": {"name": "MAXN", "id": 0}, "gpu_clocks": {"jetson_clocks": True}},
    "latency": {"kind": "measured", "median_ms": 0.41, "p99_ms": 0.52, "throughput_per_s": 2400.0},
    "memory": {"kind": "measured", "system_ram_above_idle_bytes": 96 << 20},
    "energy": {"kind": "measured", "source": "ina", "rail": "VDD_IN", "gross_j_per_inference": 0.0031,
               "net_j_per_inference": 0.0012, "windows": []},
}


def test_a_boards_result_replaces_its_estimate_in_the_report(tmp_path):
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"])], "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(rng.standard_normal((16, 3)).astype(np.float32), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", x=rng.random((60, 16)).astype(np.float32), y=rng.integers(0, 3, 60))
    (tmp_path / "result.json").write_text(json.dumps(RESULT))
    recipe = parse_recipe({"name": "board", "models": [{
        "name": "m", "onnx": str(tmp_path / "m.onnx"), "data": {"name": "npz", "path": str(tmp_path / "d.npz")},
        "export": {}, "bench": {"targets": ["jetson-orin-nx"], "board_results": {
            "jetson-orin-nx": str(tmp_path / "result.json")}}}]})
    record = run_recipe(recipe, tmp_path / "runs").bench[0]
    for part in ("latency", "memory", "energy"):
        assert record[part]["kind"] == "measured" and record[part]["replaces"]["kind"] == "estimated"
    assert record["board"]["power_mode"]["name"] == "MAXN" and record["energy"]["rail"] == "VDD_IN"
    assert latency_text(record["latency"]).startswith("410 us / 520 us (measured; estimated ")
    assert memory_text(record["memory"]).startswith("96.0 MiB system RAM above idle (measured; estimated ")
    assert energy_text(record["energy"]).startswith("3.1 mJ (measured, VDD_IN; estimated ")
