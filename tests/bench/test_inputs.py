"""Input specifications: several inputs, integer and scalar ones, dynamic dimensions given or refused by name."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgewise.bench.inputs import declared_inputs, load_arrays, parse_request, resolve_inputs
from edgewise.board.errors import UserError


def _graph(*inputs):
    return helper.make_graph([], "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs], [])


SILERO_LIKE = _graph(("input", TensorProto.FLOAT, ["batch", "samples"]),
                     ("state", TensorProto.FLOAT, [2, "batch", 128]), ("sr", TensorProto.INT64, []))


def test_request_forms():
    assert parse_request("x:1x3x640x640") == parse_request("x:1x3x640x640")
    r = parse_request("sr:int64=16000")
    assert (r.name, r.shape, r.dtype, r.value) == ("sr", None, "int64", 16000.0)
    r = parse_request("mask:1x128:bool")
    assert (r.shape, r.dtype) == ((1, 128), "bool")
    assert parse_request("n:scalar:int32=3").shape == ()
    for bad in ("x:1xx3", "x:0x3", "x:1x3:float128", "x=abc"):
        with pytest.raises(UserError):
            parse_request(bad)


def test_several_inputs_with_a_shared_dynamic_dimension_integers_and_a_scalar():
    inputs = resolve_inputs(declared_inputs(SILERO_LIKE), [parse_request("input:1x512"), parse_request("sr=16000")])
    feeds = inputs.feeds
    assert feeds["input"].shape == (1, 512) and feeds["input"].dtype == np.float32
    assert feeds["state"].shape == (2, 1, 128) and not feeds["state"].any(), "a state starts at zeros"
    assert feeds["sr"].shape == () and feeds["sr"].dtype == np.int64 and int(feeds["sr"]) == 16000
    assert inputs.text() == "input:1x512:float32 state:2x1x128:float32 sr:scalar:int64"
    assert [s["values"] for s in inputs.spec] == ["uniform [0, 1)", "zeros", "filled with 16000"]


def test_a_dynamic_dimension_nobody_gives_is_refused_by_name():
    with pytest.raises(UserError) as caught:
        resolve_inputs(declared_inputs(SILERO_LIKE), [parse_request("sr=16000")])
    # every unsized dimension of every input in one error, and the whole line to copy
    assert "input [batch, samples]: 'batch', 'samples'; state [2, batch, 128]: 'batch'" in caught.value.problem
    assert "--input input:1x<samples> --input state:2x1x128," in caught.value.fix
    assert "--batch N sets 'batch'" in caught.value.fix
    partly = resolve_inputs(declared_inputs(SILERO_LIKE), [parse_request("input:4x256")])
    assert partly.feeds["state"].shape == (2, 4, 128)
    batched = resolve_inputs(declared_inputs(_graph(("x", TensorProto.FLOAT, ["N", 3]))), batch=8)
    assert batched.feeds["x"].shape == (8, 3)


def test_unknown_dims_written_as_0_or_question_marks_are_each_their_own():
    graph = _graph(("x", TensorProto.FLOAT, [-1, 3, "?", "?"]))
    graph.input[0].type.tensor_type.shape.dim[0].dim_value = 0
    inputs = resolve_inputs(declared_inputs(graph), [parse_request("x:1x3x48x192")])
    assert inputs.feeds["x"].shape == (1, 3, 48, 192)


def test_shapes_that_disagree_or_names_that_do_not_exist():
    declared = declared_inputs(SILERO_LIKE)
    with pytest.raises(UserError, match="has no input 'inputs'"):
        resolve_inputs(declared, [parse_request("inputs:1x512")])
    with pytest.raises(UserError, match="'batch' is 1 for one input and 2 for state"):
        resolve_inputs(declared, [parse_request("input:1x512"), parse_request("state:2x2x128")])
    with pytest.raises(UserError, match="declared \\[2, batch, 128\\]"):
        resolve_inputs(declared, [parse_request("input:1x512"), parse_request("state:3x1x128")])
    with pytest.raises(UserError, match="has 2 dimensions"):
        resolve_inputs(declared, [parse_request("input:512")])


def test_arrays_from_an_npz_by_input_name(tmp_path):
    np.savez(tmp_path / "in.npz", input=np.ones((1, 320), np.float32), sr=np.array(8000, np.int64))
    inputs = resolve_inputs(declared_inputs(SILERO_LIKE), arrays=load_arrays(tmp_path / "in.npz"))
    assert inputs.feeds["input"].shape == (1, 320) and int(inputs.feeds["sr"]) == 8000
    assert inputs.spec[0]["values"] == "given"
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot read"):
        load_arrays(tmp_path / "bad.npz")


def test_initializers_listed_as_inputs_are_not_inputs():
    graph = _graph(("x", TensorProto.FLOAT, [1, 4]), ("w", TensorProto.FLOAT, [4, 4]))
    graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((4, 4), np.float32), "w"))
    assert [d.name for d in declared_inputs(graph)] == ["x"]
