import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgewise.board.session import fold_dequantized_weights


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
    model = fold_dequantized_weights(_conv_graph(np.array([0.5, 0.25])))
    assert [n.op_type for n in model.graph.node] == ["Conv"]
    weight = next(i for i in model.graph.initializer if i.name == "w")
    assert np.array_equal(numpy_helper.to_array(weight).reshape(-1), [0.5, -0.5])


def test_a_scale_laid_out_otherwise_is_left_to_onnx_runtime():
    model = fold_dequantized_weights(_conv_graph(np.array([0.5, 0.25]).reshape(2, 1, 1)))  # NNCF's INT4 files do this
    assert [n.op_type for n in model.graph.node] == ["DequantizeLinear", "Conv"]


def _steps_first(batch):
    """x (batch, 3, 4) -> Transpose -> y (3, batch, 4): an LSTM or CTC head's (steps, batch, classes), its batch fixed
    at `batch` where that is a number."""
    nodes = [helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0, 2])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, batch, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_an_output_s_samples_are_joined_along_its_own_batch_axis_and_come_first():
    import onnxruntime as ort

    from edgewise.board.session import batch_axis, run_samples

    x = np.arange(5 * 12, dtype=np.float32).reshape(5, 3, 4)
    for batch in (1, "n"):  # a vendor file's fixed batch 1, run sample by sample; a free batch, run at once
        session = ort.InferenceSession(_steps_first(batch).SerializeToString(), providers=["CPUExecutionProvider"])
        (out,) = run_samples(session, x)
        np.testing.assert_array_equal(out, x)  # sample i's steps are sample i's, not the first samples' steps
    assert (batch_axis((3, 1, 4), 1), batch_axis((1, 3, 4), 1), batch_axis((3, 4), 1)) == (1, 0, None)


def test_a_gemm_s_4_bit_weight_is_dequantized_once_at_load_too():
    """ONNX Runtime has no 4-bit Gemm (nor LSTM or GRU) kernel: a converted graph's Gemm, written back as it came,
    would dequantize its weight on every run (ddddocr's OCR file: 15 ms where 4.5 ms with the weight folded)."""
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale"], ["w"], name="dq", axis=0),
             helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)]
    inits = [numpy_helper.from_array(np.array([[1, -2], [3, 0]], np.int8), "w_q"),
             numpy_helper.from_array(np.array([0.5, 0.25], np.float32), "w_scale")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = fold_dequantized_weights(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))
    assert [n.op_type for n in model.graph.node] == ["Gemm"]
    weight = next(i for i in model.graph.initializer if i.name == "w")
    assert np.array_equal(numpy_helper.to_array(weight), [[0.5, -1.0], [0.75, 0.0]])
