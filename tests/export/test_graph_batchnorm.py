import dataclasses

import numpy as np
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

from edgewise import compress
from edgewise.export.graph_batchnorm import fold_graph_batchnorm
from edgewise.export.onnx_export import export_proto
from edgewise.export.w4a8 import to_w4a8


def _converted(tmp_path) -> tuple[nn.Module, torch.Tensor]:
    """A small CNN as a converted ONNX graph keeps it: Conv -> BatchNormalization -> Relu -> Flatten -> Gemm, with two
    channels whose normalization scale is negative."""
    from onnx import helper

    from edgewise.onnxin.convert import onnx_to_torch

    torch.manual_seed(0)
    x = torch.randn(64, 3, 8, 8)
    proto = export_proto(nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                       nn.Linear(6 * 8 * 8, 4)).eval(), x[:2])
    conv = next(n for n in proto.graph.node if n.op_type == "Conv")
    rng = np.random.default_rng(0)
    params = {"bn.scale": np.array([1.5, -0.7, 0.3, 2.0, -1.2, 0.9]), "bn.bias": rng.uniform(-0.5, 0.5, 6),
              "bn.mean": rng.uniform(-0.2, 0.2, 6), "bn.var": rng.uniform(0.5, 2.0, 6)}
    proto.graph.initializer.extend(numpy_helper.from_array(v.astype(np.float32), k) for k, v in params.items())
    normalized = conv.output[0]
    conv.output[0] = "conv_out"
    proto.graph.node.insert(list(proto.graph.node).index(conv) + 1, helper.make_node(
        "BatchNormalization", ["conv_out", *params], [normalized], name="bn", epsilon=1e-5))
    path = tmp_path / "bn.onnx"
    import onnx

    onnx.save(proto, str(path))
    return onnx_to_torch(path, x[:2].numpy()), x


def _run(proto, x):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_a_normalization_folds_into_the_quantized_convolution_before_it(tmp_path):
    net, x = _converted(tmp_path)
    q = compress.quantize(net, "uniform", 4, per_channel=True)
    proto = export_proto(q.model, x[:2])
    assert "BatchNormalization" in [n.op_type for n in proto.graph.node]
    folded, records, names = fold_graph_batchnorm(proto, q.records)
    assert len(names) == 1 and "BatchNormalization" not in [n.op_type for n in folded.graph.node]
    before, after = _run(proto, x.numpy()), _run(folded, x.numpy())
    assert np.abs(after - before).max() <= 1e-5 * np.abs(before).max()
    conv = next(name for name, r in records.items() if r.kind == "Conv2d")
    weight = next(i for i in folded.graph.initializer if i.name == f"{conv}.weight")
    assert np.array_equal(numpy_helper.to_array(weight), records[conv].dequantize())  # levels x steps, exactly
    flipped = np.array([1, -1, 1, 1, -1, 1]).reshape(-1, 1, 1, 1)
    assert np.array_equal(records[conv].levels, q.records[conv].levels * flipped)
    linear = next(name for name, r in q.records.items() if r.kind == "Linear")
    assert records[linear] is q.records[linear]  # the linear layer is untouched


def test_a_fold_the_grid_cannot_store_leaves_the_normalization(tmp_path):
    net, x = _converted(tmp_path)
    q = compress.quantize(net, "uniform", 4, per_channel=True)
    conv = next(name for name, r in q.records.items() if r.kind == "Conv2d")
    levels = q.records[conv].levels.copy()
    levels[1, 0, 0, 0] = -8  # on a channel whose scale is negative: +8 is off the [-8, 7] grid
    records = {**q.records, conv: dataclasses.replace(q.records[conv], levels=levels, qmin=-8, qmax=7)}
    folded, kept, names = fold_graph_batchnorm(export_proto(q.model, x[:2]), records)
    assert names == [] and kept[conv] is records[conv]
    assert "BatchNormalization" in [n.op_type for n in folded.graph.node]


def test_the_w4a8_file_of_a_network_with_normalizations_rounds_each_signal_once(tmp_path):
    net, x = _converted(tmp_path)
    q = compress.quantize(net, "uniform", 4, per_channel=True)
    written = to_w4a8(q.model, x[:2], tmp_path / "m.onnx", q.records, x.numpy())
    assert len(written.folded_batchnorms) == 1
    import onnx

    ops = [n.op_type for n in onnx.load(str(written.path)).graph.node]
    assert "BatchNormalization" not in ops and ops.count("QuantizeLinear") <= 3  # input, after ReLU, (output)
    with torch.no_grad():
        want = q.model(x).numpy()
    got = _run(onnx.load(str(written.path)), x.numpy())
    assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()
