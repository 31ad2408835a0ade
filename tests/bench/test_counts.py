"""Counts at the shape run: MACs per layer kind from the shapes the model ran with, weights as stored, and what
could not be counted said so."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgewise.base.nibbles import pack_nibbles
from edgewise.bench.counts import count_onnx
from edgewise.bench.inputs import declared_inputs, parse_request, resolve_inputs


def _save(tmp_path, nodes, inputs, outputs, initializers=(), name="m.onnx", opset=21):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, tmp_path / name)
    return tmp_path / name


def _count(path, *requests):
    declared = declared_inputs(onnx.load(str(path)).graph)
    return count_onnx(path, resolve_inputs(declared, [parse_request(r) for r in requests]))


def _float(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _weights(name, shape, seed=0):
    return numpy_helper.from_array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), name)


def test_conv_weights_held_by_a_constant_node_are_counted(tmp_path):
    nodes = [helper.make_node("Constant", [], ["w"], value=_weights("w", (4, 3, 3, 3))),
             helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    path = _save(tmp_path, nodes, [_float("x", ["N", 3, "H", "W"])], [_float("y", None)])
    counts = _count(path, "x:1x3x8x8")
    assert counts.macs == 4 * 8 * 8 * (3 * 3 * 3)  # output elements x (inputs x kernel)
    assert counts.weight_bytes == 4 * 27 * 4 and counts.parameters == 108
    assert counts.layers[0].weight_bits == 32 and counts.layers[0].activation_bytes == 4 * (3 * 64 + 4 * 64)
    assert _count(path, "x:2x3x16x16").macs == 2 * 4 * 16 * 16 * 27, "at the shape run, not at dimension 1"


def test_an_if_counts_the_branch_taken_and_stores_both(tmp_path):
    def branch(name, channels, seed):
        conv = helper.make_node("Conv", ["x", f"{name}_w"], [f"{name}_y"])
        weight = _weights(f"{name}_w", (channels, 3, 1, 1), seed)
        return helper.make_graph([conv], name, [], [_float(f"{name}_y", None)], [weight])

    node = helper.make_node("If", ["c"], ["y"], then_branch=branch("then", 2, 1), else_branch=branch("else", 8, 2))
    condition = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    path = _save(tmp_path, [node], [_float("x", [1, 3, 8, 8]), condition], [_float("y", None)])
    taken = _count(path, "c:bool=1")
    assert taken.macs == 2 * 64 * 3 and taken.weight_bytes == (2 + 8) * 3 * 4
    assert _count(path, "c:bool=0").macs == 8 * 64 * 3


def test_matmul_between_activations_gemm_and_transposed_convolution(tmp_path):
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["scores"]),
             helper.make_node("Gemm", ["a", "b"], ["g"], transB=1),
             helper.make_node("ConvTranspose", ["x", "w"], ["up"], strides=[2, 2])]
    inputs = [_float("q", [1, 4, 16]), _float("k", [1, 4, 16]), _float("a", [2, 8]), _float("x", [1, 4, 5, 5])]
    path = _save(tmp_path, nodes, inputs, [_float("scores", None), _float("g", None), _float("up", None)],
                 [_weights("b", (4, 8)), _weights("w", (4, 2, 3, 3))])
    layers = {layer.op: layer for layer in _count(path).layers}
    assert layers["MatMul"].macs == 4 * 4 * 16 and layers["MatMul"].weight_bits is None  # attention-style
    assert layers["Gemm"].macs == 2 * 4 * 8
    assert layers["ConvTranspose"].macs == (4 * 5 * 5) * (2 * 3 * 3)  # every input scatters into a kernel


def test_4bit_weights_count_at_their_stored_width(tmp_path):
    levels = np.random.default_rng(0).integers(-8, 8, (16, 8))
    weight = helper.make_tensor("w_q", TensorProto.INT4, [16, 8], pack_nibbles(levels & 0x0F), raw=True)
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "s"], ["w"], axis=1),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    path = _save(tmp_path, nodes, [_float("x", [1, 16])], [_float("y", None)],
                 [weight, numpy_helper.from_array(np.full(8, 0.1, np.float32), "s")])
    counts = _count(path)
    layer = counts.layers[0]
    assert counts.macs == 16 * 8 and layer.weight_bits == 4 and layer.weight_bytes == 16 * 8 // 2
    assert counts.weight_bytes == 16 * 8 // 2 + 8 * 4


def test_what_cannot_be_counted_is_unknown_with_its_reason(tmp_path):
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik")
    path = _save(tmp_path, [node], [_float("a", [2, 3]), _float("b", [3, 4])], [_float("y", None)])
    counts = _count(path)
    assert counts.macs is None and counts.macs_counted == 0 and "Einsum" in counts.unknown[0]


def test_ops_of_other_domains_are_not_modelled_and_their_attributes_count_as_parameters(tmp_path):
    # scikit-learn's linear models and forests reach ONNX as ai.onnx.ml ops that keep their weights in attributes
    node = helper.make_node("LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml",
                            coefficients=[0.5] * 12, intercepts=[0.1, -0.1, 0.0], classlabels_ints=[0, 1, 2])
    label = helper.make_tensor_value_info("label", TensorProto.INT64, [1])
    graph = helper.make_graph([node], "g", [_float("x", [1, 4])], [label, _float("scores", [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)])
    onnx.save(model, tmp_path / "ml.onnx")
    counts = _count(tmp_path / "ml.onnx")
    assert counts.macs is None and "ai.onnx.ml:LinearClassifier" in counts.unknown[0]
    assert counts.parameters == 12 + 3 + 3


def test_recurrent_cells(tmp_path):
    node = helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=2)
    path = _save(tmp_path, [node], [_float("x", [5, 1, 3])], [_float("y", None)],
                 [_weights("w", (1, 8, 3)), _weights("r", (1, 8, 2))])
    assert _count(path).macs == 5 * 1 * (8 * 3 + 8 * 2)


def test_a_model_that_cannot_run_at_the_inputs_is_a_user_error(tmp_path):
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    path = _save(tmp_path, [node], [_float("x", ["N", 4])], [_float("y", None)], [_weights("w", (4, 2))])
    from edgewise.board.errors import UserError

    with pytest.raises(UserError, match="cannot run the model at x:1x4:int32") as caught:
        _count(path, "x:1x4:int32")
    assert "--input NAME:SHAPE:DTYPE" in caught.value.fix
