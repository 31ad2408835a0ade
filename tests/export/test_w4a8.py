import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgewise import compress
from edgewise.board.errors import UserError
from edgewise.board.session import open_session, session_options, shipped_model, widen_w4a8
from edgewise.export.onnx_records import records_from_onnx
from edgewise.export.w4a8 import to_w4a8
from edgewise.runtime import IntegerMLP


def _session_with_quantized_outputs(path, tmp_path, fast=True):
    """The file with every QuantizeLinear output added to its outputs (its integers), opened as it ships."""
    import onnxruntime as ort

    model = onnx.load(str(path))
    for name in [n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]:
        model.graph.output.append(helper.make_empty_tensor_value_info(name))
    probe = tmp_path / "probe.onnx"
    onnx.save(model, str(probe))
    data, disabled = shipped_model(probe) if fast else (str(probe), [])
    session = ort.InferenceSession(data, session_options(fast), providers=["CPUExecutionProvider"],
                                   disabled_optimizers=disabled)
    return session


@pytest.mark.parametrize("fast", [True, False], ids=["fused-int8-kernels", "as-written"])
def test_the_integer_kernel_and_the_w4a8_file_compute_the_same_integers(digits_mlp, tmp_path, fast):
    trained, data = digits_mlp
    model = trained.module
    q = compress.quantize(model, "ecq", 4, lam=0.05)
    x = data.test.x.numpy()
    # max ranges: the kernel rounds ties of its fixed-point product away from zero, ONNX Runtime's float requantizer
    # to even, and mse's scales on this MLP meet 6 exact ties in 92,160 values
    path = to_w4a8(q.model, data.train.x[:2], tmp_path / "mlp.onnx", q.records, data.train.x.numpy(), "max",
                   keep_float="none").path
    records = records_from_onnx(path)
    assert [r.name for r in records] == list(q.records)
    assert all(np.array_equal(r.levels, q.records[r.name].levels) for r in records)
    kernel = IntegerMLP.from_records(records, None)  # the scales are the file's
    accumulators, logits = kernel.run_integers(x)
    hidden = [layer.requantizer(np.maximum(acc, 0), nonnegative=True)
              for layer, acc in zip(kernel.layers, accumulators, strict=True) if layer.requantizer is not None]
    session = _session_with_quantized_outputs(path, tmp_path, fast)
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    integers = [o.astype(np.int64).reshape(len(x), -1) for o in outputs[1:]]
    assert len(integers) == 1 + len(hidden)  # the input, then every hidden layer's activations
    assert np.array_equal(integers[0], kernel.quantize(x))
    for got, want in zip(integers[1:], hidden, strict=True):
        assert np.array_equal(got, want)
    assert np.abs(outputs[0] - logits).max() <= 1e-4 * np.abs(logits).max()
    assert np.array_equal(outputs[0].argmax(1), logits.argmax(1))


def _optimized_ops(path, tmp_path):
    open_session(path, optimized_path=tmp_path / "optimized.onnx")
    return [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]


def test_a_w4a8_cnn_runs_on_int8_kernels_and_stores_4_bit_levels(digits_cnn, tmp_path):
    trained, data = digits_cnn
    model = trained.module
    folded, _ = compress.fold_batchnorm(model, data.train.x[:1])
    q = compress.quantize(folded, "ecq", 4, lam=0.05)
    path = to_w4a8(q.model, data.train.x[:2], tmp_path / "cnn.onnx", q.records, data.train.x[:256].numpy()).path
    stored = {i.name: i for i in onnx.load(str(path)).graph.initializer}
    for name, record in q.records.items():
        weight = stored[f"{name}.weight_quantized"]
        assert weight.data_type in (TensorProto.INT4, TensorProto.UINT4)
        zero = numpy_helper.to_array(stored[f"{name}.weight_zero_point"]).astype(np.int16)
        assert np.array_equal(numpy_helper.to_array(weight).astype(np.int16) - zero.reshape(-1, *[1] * (
            record.levels.ndim - 1)), record.levels)
    ops = _optimized_ops(path, tmp_path)
    assert ops.count("QLinearConv") == sum(r.kind == "Conv2d" for r in q.records.values())
    assert ops.count("QGemm") == sum(r.kind == "Linear" for r in q.records.values())
    assert "DequantizeLinear" not in ops  # float logits straight out of the last QGemm
    session = open_session(path)
    predictions = session.run(None, {"x": data.test.x.numpy()})[0].argmax(1)
    with __import__("torch").no_grad():
        weight_only = q.model(data.test.x).argmax(1).numpy()
    accuracy, weight_only_accuracy = (predictions == data.test.y.numpy()).mean(), (
        weight_only == data.test.y.numpy()).mean()
    assert accuracy >= weight_only_accuracy - 0.02
    # the same graph with its weights as int8 (what an int8 quantizer writes) is larger
    wide = widen_w4a8(onnx.load(str(path)))
    assert len(wide.SerializeToString()) > path.stat().st_size + 0.4 * sum(r.levels.size for r in q.records.values())


def test_int8_activations_are_symmetric_for_tensorrt(digits_mlp, tmp_path):
    trained, data = digits_mlp
    model = trained.module
    q = compress.quantize(model, "ecq", 4, lam=0.05)
    path = to_w4a8(q.model, data.train.x[:2], tmp_path / "mlp.onnx", q.records, data.train.x[:128].numpy(),
                   calibrator="percentile", activations="int8").path
    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    activation_zeros = [inits[n.input[2]] for n in graph.node if n.op_type == "QuantizeLinear"]
    assert activation_zeros and all(z.data_type == TensorProto.INT8 and not numpy_helper.to_array(z).any()
                                    for z in activation_zeros)
    assert {p.key: p.value for p in onnx.load(str(path)).metadata_props}["edgewise.activations"] == "int8"
    with pytest.raises(UserError, match="quantized as signed"):
        IntegerMLP.from_records(records_from_onnx(path), None)


def test_block_wise_records_are_refused_with_the_fix(digits_mlp, tmp_path):
    trained, data = digits_mlp
    model = trained.module
    q = compress.quantize(model, "uniform", 4, block=16)
    with pytest.raises(UserError, match="block-wise steps; int8 kernels take one step per layer"):
        to_w4a8(q.model, data.train.x[:2], tmp_path / "mlp.onnx", q.records, data.train.x[:16].numpy())
    assert not (tmp_path / "mlp.onnx").exists()


def test_calibration_batches_shrink_to_the_memory_a_model_needs_and_find_the_same_ranges(digits_cnn, monkeypatch):
    from edgewise.export import w4a8
    from edgewise.export.onnx_export import export_proto

    trained, data = digits_cnn
    proto = export_proto(trained.module, data.val.x[:2])
    calibration = data.train.x[:40].numpy()
    whole = w4a8.tensor_ranges(proto, calibration)
    monkeypatch.setattr(w4a8, "CALIBRATION_MEMORY", 1)  # one sample a batch: every tensor's values held once
    assert w4a8.tensor_ranges(proto, calibration) == whole


class _Toeplitz(torch.nn.Conv1d):
    """PESTO's layer: a linear map over (N, features) written as a Conv1d, which reshapes its input itself."""

    def __init__(self, features: int, outputs: int) -> None:
        super().__init__(1, 1, kernel_size=features + outputs - 1, padding=outputs - 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.unsqueeze(-2)).squeeze(-2)


class _PitchHead(torch.nn.Module):
    """A layer norm over (1, bins), a convolution and a Toeplitz layer, as PESTO's encoder ends."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm([1, 24])
        self.conv = torch.nn.Conv1d(1, 4, 3, padding=1)
        self.fc = _Toeplitz(96, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(self.norm(x))).flatten(1))


def test_a_user_layer_subclass_and_a_layer_norm_along_another_axis_go_through_w4a8(tmp_path):
    torch.manual_seed(0)
    model = _PitchHead().eval()
    x = torch.randn(32, 1, 24)
    with torch.no_grad():
        ref = compress.ReferenceSamples(x, model(x).argmax(1))
    q = compress.quantize(model, "ecqx", 4, ref=ref)  # relevances and moments seen where the kernel slides
    assert q.records["fc"].kind == "Conv1d" and q.history["rounding"] == "compensated"
    path = to_w4a8(q.model, x[:2], tmp_path / "w.onnx", q.records, x.numpy()).path
    proto = onnx.load(str(path))
    norm = next(n for n in proto.graph.node if n.op_type == "LayerNormalization")
    inits = {i.name for i in proto.graph.initializer}
    assert all(name in inits for name in norm.input[1:])  # its scale and bias stay float
    session = open_session(path)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert float(np.abs(got - q.model(x).numpy()).max()) < 0.1 * float(q.model(x).abs().max())
