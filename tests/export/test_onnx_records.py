"""Float MLPs from elsewhere: refused by the kernel unless rounding is asked, then rounded per layer to 4 bits."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgewise.base.grid import symmetric_levels
from edgewise.board.errors import UserError
from edgewise.export.onnx_records import records_from_onnx
from edgewise.runtime import IntegerMLP


def float_mlp(path, rng):
    w1 = rng.normal(size=(8, 6)).astype(np.float32)  # MatMul: (inputs, outputs)
    b1 = rng.normal(size=6).astype(np.float32)
    w2 = rng.normal(size=(3, 6)).astype(np.float32)  # Gemm transB: (outputs, inputs)
    b2 = rng.normal(size=3).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
                              [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"),
                                                                          (b2, "b2"))])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), path)
    return w1.T, b1, w2, b2


def test_float_weights_are_refused_with_the_fix(tmp_path):
    float_mlp(tmp_path / "m.onnx", np.random.default_rng(0))
    with pytest.raises(UserError, match="float weights") as caught:
        records_from_onnx(tmp_path / "m.onnx")
    assert "round_float_weights" in caught.value.fix


def test_rounded_layers_keep_orientation_bias_and_grid(tmp_path):
    w1, b1, w2, b2 = float_mlp(tmp_path / "m.onnx", np.random.default_rng(1))
    first, second = records_from_onnx(tmp_path / "m.onnx", round_float_weights=True)
    assert first.levels.shape == (6, 8) and second.levels.shape == (3, 6)
    np.testing.assert_array_equal(first.levels, symmetric_levels(w1, 4)[0])
    np.testing.assert_array_equal(first.bias, b1)
    np.testing.assert_array_equal(second.bias, b2)
    levels, step = symmetric_levels(w2, 4)[:2]
    np.testing.assert_array_equal(second.levels, levels)
    assert np.abs(second.levels).max() == 7 and np.abs(second.levels * step - w2).max() <= step / 2 + 1e-6
    x = np.random.default_rng(2).random((5, 8)).astype(np.float32)
    mlp = IntegerMLP.from_records([first, second], x, activation_bits=8)
    assert mlp.run(x, "bins").shape == (5, 3)
    for exact, fast in zip(mlp.run_integers(x, "bins")[0], mlp.run_integers(x, "fast")[0], strict=True):
        np.testing.assert_array_equal(exact, fast)
