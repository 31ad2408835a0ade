from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from edgewise import compress
from edgewise.board.errors import UserError
from edgewise.export import w4a8
from edgewise.export.onnx_export import export_proto
from edgewise.export.w4a8_precision import only_quantized, quantized_readers, sensitivity


@pytest.fixture(scope="module")
def mlp_graphs(digits_mlp):
    """The 4-bit digits MLP's float graph, its overrides (max ranges) and its calibration inputs."""
    trained, data = digits_mlp
    q = compress.quantize(trained.module, "ecq", 4, lam=0.05)
    proto = export_proto(q.model, data.train.x[:2])
    w4a8._named(proto)
    calibration = data.train.x[:64].numpy()
    ranges = w4a8.tensor_ranges(proto, calibration)
    return q, proto, ranges, calibration


def _run(proto, x):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _reader_of(proto, layer):
    """The node that reads layer `layer`'s weight, and its activation input."""
    node = next(n for n in proto.graph.node if f"{layer}.weight" in n.input)
    return node.name, next(i for i in node.input if i != f"{layer}.weight" and "bias" not in i)


def test_with_no_node_quantized_the_graph_computes_the_float_activations(mlp_graphs):
    q, proto, ranges, calibration = mlp_graphs
    overrides = w4a8.quantization_overrides(ranges, q.records)
    analysis = w4a8.analysis_graph(proto, overrides, q.records, "uint8", calibration[:1])
    readers = quantized_readers(analysis)
    assert set(readers.values()) & {"Gemm", "MatMul"}
    float_out, none_out = _run(proto, calibration), _run(only_quantized(analysis, proto, set()), calibration)
    assert np.abs(none_out - float_out).max() <= 2e-4 * np.abs(float_out).max()  # the biases are int32
    assert np.abs(_run(analysis, calibration) - float_out).max() > 1e-3 * np.abs(float_out).max()


def test_the_node_whose_8_bit_input_breaks_the_network_is_the_one_kept_float(mlp_graphs):
    q, proto, ranges, calibration = mlp_graphs
    second = list(q.records)[1]
    node, tensor = _reader_of(proto, second)
    low, high = ranges[tensor]
    broken = {**ranges, tensor: (low, 1000 * high)}  # 255 steps over 1000x the range: the input rounds to 0
    analysis = w4a8.analysis_graph(proto, w4a8.quantization_overrides(broken, q.records), q.records, "uint8",
                                   calibration[:1])
    found = sensitivity(analysis, proto, calibration, tolerance=0.05)
    assert found.error > 0.5
    assert found.node_errors[0][0] == node
    assert found.kept_float == [node]
    assert found.error_kept <= 0.05
    summary = found.summary()
    assert summary["float_nodes"] == [f"{node} ({found.node_errors[0][1]})"] and summary["sessions"] == found.sessions
    # a tolerance out of reach: at most a tenth of the nodes (at least one) float, the least error measured, and said
    tight = sensitivity(analysis, proto, calibration, tolerance=1e-9)
    assert tight.kept_float == [node] and not tight.within_tolerance
    written = w4a8.OnnxFile(Path("m.onnx"), 0, 21, float_nodes=tight.kept_float, sensitivity=tight.summary())
    assert "out of reach" in w4a8.float_nodes_line(written) and node in w4a8.float_nodes_line(written)
    # a graph within the tolerance is measured once and keeps every node quantized
    calm = sensitivity(analysis, proto, calibration, tolerance=found.error + 1.0)
    assert calm.kept_float == [] and calm.node_errors == [] and calm.sessions == 2


def test_a_node_named_to_keep_float_keeps_4_bit_weights_and_float_activations(mlp_graphs, digits_mlp, tmp_path):
    q, proto, _, calibration = mlp_graphs
    _, data = digits_mlp
    node, _ = _reader_of(proto, list(q.records)[1])
    written = w4a8.to_w4a8(q.model, data.train.x[:2], tmp_path / "m.onnx", q.records, calibration,
                           keep_float=[node])
    assert written.float_nodes == [node] and written.sensitivity is None
    saved = onnx.load(str(written.path))
    assert {p.key: p.value for p in saved.metadata_props}[w4a8.FLOAT_NODES_KEY] == node
    kept = next(n for n in saved.graph.node if n.name == node)
    producers = {o: n for n in saved.graph.node for o in n.output}
    inputs = [producers[i] for i in kept.input if i in producers]
    weight = next(n for n in inputs if n.op_type == "DequantizeLinear")
    stored = next(i for i in saved.graph.initializer if i.name == weight.input[0])
    assert stored.data_type in (TensorProto.INT4, TensorProto.UINT4), "its weight is still stored at 4 bit"
    assert "Relu" in [n.op_type for n in inputs], "it reads the float activation, its ReLU restored"
    assert node not in quantized_readers(saved)
    with pytest.raises(UserError, match="no node 'nope' reading 8-bit activations"):
        w4a8.to_w4a8(q.model, data.train.x[:2], tmp_path / "n.onnx", q.records, calibration, keep_float=["nope"])
    assert not (tmp_path / "n.onnx").exists()


def test_auto_keeps_nothing_float_where_8_bit_activations_are_harmless(mlp_graphs, digits_mlp, tmp_path):
    q, _, _, calibration = mlp_graphs
    _, data = digits_mlp
    written = w4a8.to_w4a8(q.model, data.train.x[:2], tmp_path / "m.onnx", q.records, calibration)
    assert written.float_nodes == []
    assert written.sensitivity["activation_error"] <= w4a8.ACTIVATION_TOLERANCE
