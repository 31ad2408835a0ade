"""Op versions of opsets 18 to 21 (as today's exporters write them), a fixed batch, and handlers as plug-ins."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgewise import export
from edgewise.board.errors import UserError
from edgewise.onnxin import OpHandler, onnx_to_torch, register_op_handler, source_proto
from edgewise.onnxin.handlers import ONNX_OPS


def _model(nodes, inputs, outputs, inits, opset=20):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def _ort(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _opset20_cnn(tmp_path, batch="n"):
    """A graph written with the op versions opset 20 brings: Identity-19, Reshape-19 (allowzero), ReduceMean-18 (axes
    as input), Split-18 (num_outputs, uneven), Pad-18 (axes), Resize-19 by scales after an empty roi, AveragePool-19,
    Gelu-20, and a Reshape by constant widths that flattens (N, C, 1, 1)."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])
    inits = {"w1": rng.normal(0, 0.3, (6, 3, 3, 3)).astype(np.float32), "b1": np.zeros(6, np.float32),
             "w2": rng.normal(0, 0.3, (5, 6, 1, 1)).astype(np.float32),
             "axes": np.array([2, 3], np.int64), "pads": np.array([1, 1, 1, 1], np.int64),
             "scales": np.array([1, 1, 2, 2], np.float32), "shape": np.array([-1, 5], np.int64),
             "wl": rng.normal(0, 0.3, (4, 5)).astype(np.float32), "bl": np.zeros(4, np.float32)}
    nodes = [
        helper.make_node("Identity", ["x"], ["xi"]),
        helper.make_node("Conv", ["xi", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Gelu", ["c1"], ["g1"]),
        helper.make_node("Split", ["g1"], ["s1", "s2"], axis=1, num_outputs=2),
        helper.make_node("Concat", ["s2", "s1"], ["cat"], axis=1),
        helper.make_node("AveragePool", ["cat"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Resize", ["p1", "", "scales"], ["r1"], mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Pad", ["r1", "pads", "", "axes"], ["pd"]),
        helper.make_node("Conv", ["pd", "w2"], ["c2"]),
        helper.make_node("ReduceMean", ["c2", "axes"], ["m"], keepdims=1),
        helper.make_node("Reshape", ["m", "shape"], ["flat"], allowzero=1),
        helper.make_node("Gemm", ["flat", "wl", "bl"], ["y"], transB=1),
    ]
    model = _model(nodes, [x], [y], inits)
    path = tmp_path / "opset20.onnx"
    onnx.save(model, str(path))
    return model, path


def test_opset_20_versions_convert_exactly(tmp_path):
    model, path = _opset20_cnn(tmp_path)
    x = np.random.default_rng(1).random((5, 3, 8, 8), dtype=np.float32)
    module = onnx_to_torch(path, x[:2])
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), _ort(model, x), rtol=1e-5, atol=1e-6)


def test_split_18_splits_unevenly_as_onnx_does(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 5])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", k]) for n, k in (("a", 3), ("b", 2))]
    model = _model([helper.make_node("Split", ["x"], ["a0", "b0"], axis=1, num_outputs=2),
                    helper.make_node("Relu", ["a0"], ["a"]), helper.make_node("Relu", ["b0"], ["b"])],
                   [x], outs, {})
    onnx.save(model, str(tmp_path / "split.onnx"))
    data = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    module = onnx_to_torch(tmp_path / "split.onnx", data)
    a, b = module(torch.from_numpy(data))
    assert (a.shape[1], b.shape[1]) == (3, 2)  # ceil(5 / 2), then the rest


def test_a_fixed_batch_runs_in_slices_and_its_export_keeps_the_signature(tmp_path):
    model, path = _opset20_cnn(tmp_path, batch=1)
    x = np.random.default_rng(2).random((5, 3, 8, 8), dtype=np.float32)
    module = onnx_to_torch(path, x[:3])  # more samples than the file's batch of 1
    assert module.fixed_batch == 1
    expected = np.concatenate([_ort(model, x[i:i + 1]) for i in range(5)])
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    out = export.to_onnx(module, torch.from_numpy(x[:2]), tmp_path / "again.onnx")
    proto = onnx.load(str(out.path))
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 8, 8]
    assert export.verify(out.path, module, torch.from_numpy(x))["rel_diff"] < 1e-5


def test_pruned_flatten_by_constant_widths_still_runs_and_no_stale_shapes_remain(tmp_path):
    from edgewise import compress

    _, path = _opset20_cnn(tmp_path, batch=1)
    x = torch.from_numpy(np.random.default_rng(3).random((8, 3, 8, 8), dtype=np.float32))
    module = onnx_to_torch(path, x[:2].numpy())
    ref = compress.ReferenceSamples(x, torch.arange(8) % 4, "classification")
    result = compress.prune(module, ref, "l1", 0.4)
    cut = {r["layer"]: r for r in result.layers}
    second = next(name for name, m in module.named_modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 5)
    # the conv before the Reshape to (-1, 5) is cut too: the reshape now merges whatever width comes
    assert cut[second]["channels_after"] < 5, result.left_whole
    assert result.after.params < result.before.params
    proto = source_proto(result.model)
    widths = {v.name: v.type.tensor_type.shape.dim[1].dim_value for v in proto.graph.value_info
              if len(v.type.tensor_type.shape.dim) > 1}
    # shape annotations are the pruned graph's own, never the source's (ONNX Runtime trusts them over the weights)
    assert widths.get("c2", cut[second]["channels_after"]) == cut[second]["channels_after"]
    out = export.to_onnx(result.model, x[:1], tmp_path / "pruned.onnx")
    assert export.verify(out.path, result.model, x)["rel_diff"] < 1e-4


def test_an_op_without_a_handler_is_named_with_the_way_to_add_one(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    model = helper.make_model(helper.make_graph([helper.make_node("Twice", ["x"], ["y"], domain="acme")], "g", [x],
                                                [y]), opset_imports=[helper.make_opsetid("", 20),
                                                                     helper.make_opsetid("acme", 1)])
    onnx.save(model, str(tmp_path / "twice.onnx"))
    with pytest.raises(UserError, match=r"acme:Twice@1") as err:
        onnx_to_torch(tmp_path / "twice.onnx", np.ones((2, 4), np.float32))
    assert "register_op_handler" in err.value.fix


def test_a_registered_handler_converts_its_op():
    from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node

    class Twice(torch.nn.Module, OnnxToTorchModule):
        def forward(self, x):
            return 2 * x

    handler = OpHandler("Twice", {1: lambda node, graph: OperationConverterResult(Twice(), onnx_mapping_from_node(
        node))}, domain="acme")
    register_op_handler(handler)
    try:
        assert "acme:Twice" in ONNX_OPS.names()
        from onnx2torch.node_converters.registry import get_converter

        from edgewise.onnxin.handlers import install

        install()
        assert get_converter("Twice", 1, "acme") is handler.converters[1]
    finally:
        ONNX_OPS.unregister("acme:Twice")


def test_a_softmax_written_out_as_jax_exports_it_becomes_one(tmp_path):
    from edgewise.compress.outputs import final_squash

    rng = np.random.default_rng(4)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])
    inits = {"w": rng.normal(0, 3, (6, 3)).astype(np.float32), "axes": np.array([1], np.int64),
             "shape": np.array([-1, 1], np.int64), "wide": np.array([1, 3], np.int64)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("Exp", ["z"], ["e"]),
             helper.make_node("ReduceSum", ["e", "axes"], ["s"], keepdims=0),
             helper.make_node("Reshape", ["s", "shape"], ["s1"]), helper.make_node("Expand", ["s1", "wide"], ["s2"]),
             helper.make_node("Div", ["e", "s2"], ["y"])]
    model = _model(nodes, [x], [y], inits, opset=13)
    onnx.save(model, str(tmp_path / "jax.onnx"))
    data = rng.normal(size=(4, 6)).astype(np.float32)
    module = onnx_to_torch(tmp_path / "jax.onnx", data)  # checked against ONNX Runtime after the rewrite
    assert final_squash(module, torch.from_numpy(data)) is not None  # criteria now score the logits before it
