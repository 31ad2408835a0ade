"""Convolutions on the integer kernel: im2col is the convolution, CNNs read from ONNX files run bit-exactly, W4A8
files' integers are the kernel's, and what cannot be mapped is named."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgewise import compress, export
from edgewise.base.records import QuantizedLayer
from edgewise.board.errors import UserError
from edgewise.board.session import session_options, shipped_model
from edgewise.export.onnx_records import records_from_onnx
from edgewise.runtime import IntegerMLP
from edgewise.runtime.conv import Window, im2col, max_pool, rows_to_maps
from edgewise.zoo.models import build_model


@pytest.mark.parametrize(("stride", "padding", "dilation"), [(1, 1, 1), (2, 0, 1), (1, 2, 2), (2, 1, 1)])
def test_im2col_times_the_weight_matrix_is_the_convolution(stride, padding, dilation):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 3, 9, 7))
    w = rng.integers(-8, 8, (5, 3, 3, 3))
    window = Window((3, 3), (stride, stride), (padding,) * 4, (dilation, dilation))
    rows, size = im2col(x, window)
    got = rows_to_maps(rows @ w.reshape(5, -1).T, 2, size)
    want = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(), stride=stride,
                                      padding=padding, dilation=dilation).numpy()
    assert got.shape == want.shape and np.array_equal(got, want.astype(np.int64))
    assert window.output_size(9, 7) == size


def test_integer_max_pooling_is_torchs():
    x = np.random.default_rng(1).integers(0, 256, (2, 4, 9, 9))
    window = Window((3, 3), (2, 2), (1, 1, 1, 1))
    want = torch.nn.functional.max_pool2d(torch.from_numpy(x).double(), 3, 2, 1).numpy()
    assert np.array_equal(max_pool(x, window), want.astype(np.int64))


@pytest.fixture(scope="module")
def quantized_cnn(tmp_path_factory):
    """The zoo's LeNet on digit-sized inputs, quantized to 4 bits (per channel), exported weight-only and as W4A8."""
    torch.manual_seed(0)
    model = build_model("lenet", (1, 8, 8), 10).eval()
    q = compress.quantize(model, "uniform", 4, per_channel=True)
    x = torch.rand(64, 1, 8, 8)
    folder = tmp_path_factory.mktemp("cnn")
    weights = export.to_onnx(q.model, x[:2], folder / "int4.onnx", q.records).path
    w4a8 = export.to_w4a8(q.model, x[:2], folder / "w4a8.onnx", q.records, x.numpy(), "max", keep_float="none").path
    return q, x.numpy(), weights, w4a8


def test_a_cnn_from_its_onnx_file_runs_bit_exactly_in_every_mode_and_costs_per_pixel(quantized_cnn):
    q, x, weights, _ = quantized_cnn
    records = records_from_onnx(weights)
    assert [r.kind for r in records] == ["Conv2d", "Conv2d", "Conv2d", "Linear", "Linear"]
    assert all(np.array_equal(r.levels, q.records[r.name].levels) for r in records)
    assert records[1].meta["max_pool"]["kernel"] == [2, 2] and records[0].meta["conv"]["pads"] == [1, 1, 1, 1]
    kernel = IntegerMLP.from_records(records, x)
    runs = [kernel.run_integers(x[:3], mode) for mode in ("bins", "bitplanes", "fast")]
    for accs, logits in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(runs[0][0], accs, strict=True))
        assert np.array_equal(runs[0][1], logits)
    with torch.no_grad():
        want = q.model(torch.from_numpy(x)).numpy()
    assert (kernel.run(x).argmax(1) == want.argmax(1)).mean() >= 0.95  # 8-bit activations vs float ones
    assert kernel.positions() == [64, 64, 16, 1, 1]
    costs = kernel.costs("fantastic4-asic")
    first = costs["layers"][0]
    nonzero = int(np.count_nonzero(records[0].levels))
    assert first["positions"] == 64 and first["dense_ops"] == 2 * 16 * 9 * 64
    assert first["additions"] >= 64 * nonzero and costs["total"]["kind"] == "emulated"


def test_a_w4a8_cnn_file_computes_the_kernels_integers(quantized_cnn):
    import onnxruntime as ort

    _, x, _, w4a8 = quantized_cnn
    kernel = IntegerMLP.from_records(records_from_onnx(w4a8), None)
    accumulators, logits = kernel.run_integers(x)
    session = export.open_session(w4a8)
    shipped = session.run(None, {"x": x})[0]
    assert np.array_equal(shipped.argmax(1), logits.argmax(1))
    assert np.abs(shipped - logits).max() <= 1e-4 * np.abs(logits).max()
    # the first convolution's requantized output is the file's first QuantizeLinear after it, integer for integer
    model = onnx.load(str(w4a8))
    quantized = [n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    model.graph.output.append(helper.make_empty_tensor_value_info(quantized[1]))
    onnx.save(model, str(w4a8.with_name("probe.onnx")))
    shipped_graph, disabled = shipped_model(w4a8.with_name("probe.onnx"))  # as it ships: QLinearConv
    probe = ort.InferenceSession(shipped_graph, session_options(), providers=["CPUExecutionProvider"],
                                 disabled_optimizers=disabled)
    integers = probe.run(None, {"x": x})[1].astype(np.int64)
    first = kernel.layers[0]
    rows = first.requantizer(np.maximum(accumulators[0].transpose(0, 2, 3, 1).reshape(-1, 16), 0), nonnegative=True)
    assert np.array_equal(integers, rows_to_maps(rows, len(x), (8, 8)))


def _graph(tmp_path, nodes, inits, name="m.onnx"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), tmp_path / name)
    return tmp_path / name


def test_what_the_kernel_cannot_map_is_named(tmp_path):
    weight = numpy_helper.from_array(np.ones((2, 2, 3, 3), np.float32), "w")
    branch = _graph(tmp_path, [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                               helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Add", ["r", "x"], ["y"])],
                    [weight])
    with pytest.raises(UserError, match="the network branches"):
        records_from_onnx(branch, round_float_weights=True)
    gelu = _graph(tmp_path, [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                             helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Conv", ["s", "w"], ["y"])],
                  [weight], "sigmoid.onnx")
    with pytest.raises(UserError, match=r"\(Sigmoid\) of .* cannot be mapped onto the integer kernel"):
        records_from_onnx(gelu, round_float_weights=True)
    grouped = _graph(tmp_path, [helper.make_node("Conv", ["x", "g"], ["y"], group=2)],
                     [numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "g")], "grouped.onnx")
    with pytest.raises(UserError, match="is grouped"):
        records_from_onnx(grouped, round_float_weights=True)
    blocked = QuantizedLayer("c", "Conv2d", np.zeros((32, 32, 1, 1), np.int8), np.ones(32, np.float32), 4, -8, 7,
                             axis=0, block=16, multipliers=np.ones((32, 2, 1, 1), np.int16),
                             meta={"conv": {"kernel": [1, 1]}})
    with pytest.raises(UserError, match="block-wise steps"):
        IntegerMLP.from_records([blocked], np.zeros((1, 32, 2, 2)))


def test_emulate_takes_the_kits_own_4_bit_cnn(quantized_cnn, edgewise, tmp_path):
    _, _, weights, _ = quantized_cnn  # a LeNet for digit-sized inputs
    result = edgewise("emulate", str(weights), "--target", "fantastic4-asic", "--data", "digits")
    assert result.returncode == 0, result.stderr
    assert "(all figures emulated)" in result.stdout + result.stderr
