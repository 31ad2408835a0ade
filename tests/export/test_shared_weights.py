import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from edgewise.export import open_session, to_onnx
from edgewise.export.shared_weights import share_identical_initializers


def test_a_weight_copied_into_several_layers_is_stored_once_and_computes_the_same(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32)).eval()
    with torch.no_grad():  # as a converted graph holds a tensor its source shared: one copy per layer
        model[2].weight.copy_(model[0].weight)
        model[4].weight.copy_(model[0].weight)
    x = torch.randn(3, 32)
    file = to_onnx(model, x[:1], tmp_path / "m.onnx")
    proto = onnx.load(str(file.path))
    weights = [i for i in proto.graph.initializer if list(i.dims) == [32, 32]]
    assert len(weights) == 1
    session = open_session(file.path)
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(out, model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_small_tensors_graph_inputs_and_what_a_subgraph_reads_keep_their_names():
    big = np.arange(512, dtype=np.float32).reshape(16, 32)
    small = np.ones(4, dtype=np.float32)
    initializers = [numpy_helper.from_array(a, n) for a, n in ((big, "a"), (big, "b"), (big, "c"), (small, "s1"),
                                                                (small, "s2"))]
    body = helper.make_graph([helper.make_node("Identity", ["c"], ["y"])], "body", [],
                             [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [16, 32])])
    nodes = [helper.make_node("Add", ["a", "b"], ["ab"]), helper.make_node("Add", ["s1", "s2"], ["s"]),
             helper.make_node("If", ["cond"], ["z"], then_branch=body, else_branch=body)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("cond", onnx.TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in ("ab", "s",
                                                                                                          "z")],
                              initializers)
    assert share_identical_initializers(graph) == big.nbytes
    assert [i.name for i in graph.initializer] == ["a", "c", "s1", "s2"]
    assert list(graph.node[0].input) == ["a", "a"]
