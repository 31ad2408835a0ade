import numpy as np
from onnx import numpy_helper

from edgewise import compress
from edgewise.export import w4a8
from edgewise.export.onnx_export import export_proto
from edgewise.export.qdq_graph import run_graph
from edgewise.export.w4a8_bias import _channel_means, correct_biases


def _offsets(placed, proto, names, x):
    """Each layer's per-channel offset: its output in the W4A8 graph against the float graph's, before any ReLU (the
    quantizer dropped those into the Q ranges, the layer now writing the ReLU's output name)."""
    dropped = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "Relu"
               and n.name not in {m.name for m in placed.graph.node}}
    got = run_graph(placed, x, names)
    want = run_graph(proto, x, [dropped.get(name, name) for name in names])
    return [np.abs(_channel_means(g, "Conv") - _channel_means(w, "Conv")) for g, w in zip(got, want, strict=True)]


def test_each_layer_s_int32_bias_takes_out_its_mean_offset(digits_cnn):
    trained, data = digits_cnn
    folded, _ = compress.fold_batchnorm(trained.module, data.train.x[:1])
    q = compress.quantize(folded, "uniform", 4, per_channel=True)
    proto = export_proto(q.model, data.train.x[:2])
    w4a8._named(proto)
    x = data.train.x[:16].numpy()
    overrides = w4a8.quantization_overrides(w4a8.tensor_ranges(proto, x), q.records)
    placed = w4a8.analysis_graph(proto, overrides, q.records, "uint8", x[:1])
    convs = [n for n in placed.graph.node if n.op_type == "Conv"]
    outputs = [n.output[0] for n in convs]
    before = _offsets(placed, proto, outputs[:1], x)
    biases = {i.name: numpy_helper.to_array(i).copy() for i in placed.graph.initializer if i.data_type == 6}
    corrected = correct_biases(placed, proto, x)
    assert [n.name for n in convs] == [name for name in corrected if name in {n.name for n in convs}]
    changed = [name for name, value in biases.items() if not np.array_equal(
        value, numpy_helper.to_array(next(i for i in placed.graph.initializer if i.name == name)))]
    assert changed, "some int32 bias moved"
    (after,) = _offsets(placed, proto, outputs[:1], x)
    scale = next(numpy_helper.to_array(i) for i in placed.graph.initializer
                 if i.name.endswith("bias_quantized_scale") and convs[0].input[2].split("_")[0] in i.name)
    assert after.mean() < before[0].mean()
    assert (after <= 0.5 * np.broadcast_to(scale, after.shape) + 1e-6).all()  # the first layer: within half a step
