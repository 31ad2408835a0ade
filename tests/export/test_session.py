import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgewise.export.session import fold_conv_dequantize


def _conv_graph(scale: np.ndarray, axis: int = 0):
    """x -> Conv(DequantizeLinear(int8 weight (2, 1, 1, 1), scale)) -> y."""
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale"], ["w"], name="dq", axis=axis),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    inits = [numpy_helper.from_array(np.array([1, -2], np.int8).reshape(2, 1, 1, 1), "w_q"),
             numpy_helper.from_array(scale.astype(np.float32), "w_scale")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_a_per_channel_weight_is_dequantized_once_at_load():
    model = fold_conv_dequantize(_conv_graph(np.array([0.5, 0.25])))
    assert [n.op_type for n in model.graph.node] == ["Conv"]
    weight = next(i for i in model.graph.initializer if i.name == "w")
    assert np.array_equal(numpy_helper.to_array(weight).reshape(-1), [0.5, -0.5])


def test_a_scale_laid_out_otherwise_is_left_to_onnx_runtime():
    model = fold_conv_dequantize(_conv_graph(np.array([0.5, 0.25]).reshape(2, 1, 1)))  # NNCF's INT4 files do this
    assert [n.op_type for n in model.graph.node] == ["DequantizeLinear", "Conv"]
