"""ONNX LSTM and GRU as torch's layers: converted exactly, written back exactly, counted, and refused with the reason
where torch has no equivalent."""


import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgewise import compress, export
from edgewise.board.errors import UserError
from edgewise.compress.model_stats import measure_cost
from edgewise.onnxin import onnx_to_torch, source_proto


class _Crnn(nn.Module):
    """A CTC recogniser: convolutions over a line image, a bidirectional LSTM over its columns, per-step classes."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                                 nn.MaxPool2d((4, 1)))
        self.rnn = nn.LSTM(8 * 2, 12, bidirectional=True)
        self.fc = nn.Linear(24, 6)

    def forward(self, x):
        f = self.cnn(x)  # (N, 8, 2, W)
        n, c, h, w = f.shape
        y, _ = self.rnn(f.permute(3, 0, 1, 2).reshape(w, n, c * h))
        return self.fc(y).permute(1, 0, 2).log_softmax(-1)  # (N, W, classes)


def _ort(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def crnn_file(tmp_path_factory, exported_as_vendors_do):
    torch.manual_seed(0)
    return exported_as_vendors_do(_Crnn(), torch.rand(1, 1, 8, 10), tmp_path_factory.mktemp("crnn") / "crnn.onnx")


def test_an_exported_lstm_recogniser_converts_prunes_quantizes_and_exports(crnn_file, tmp_path):
    x = np.random.default_rng(0).random((6, 1, 8, 10), dtype=np.float32)
    module = onnx_to_torch(crnn_file, x[:1])
    assert any(isinstance(m, nn.LSTM) for m in module.modules())
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), np.concatenate(
            [_ort(crnn_file, x[i:i + 1]) for i in range(6)]), rtol=1e-4, atol=1e-5)
    cost = measure_cost(module, (1, 8, 10))
    lstm = next(layer for layer in cost.layers if layer.kind == "LSTM")
    assert lstm.macs == 10 * 2 * 4 * 12 * (16 + 12)  # steps x directions x gates x hidden x (inputs + hidden)
    ref = compress.ReferenceSamples(torch.from_numpy(x), module(torch.from_numpy(x)).argmax(-1), "sequence")
    result = compress.prune(module, ref, "lrp", 0.3)
    assert result.after.params < result.before.params  # the first convolution; the one feeding the LSTM stays whole
    pruned = result.model
    quantized = compress.quantize(pruned, "uniform", 4)
    out = export.to_onnx(quantized.model, torch.from_numpy(x[:1]), tmp_path / "q.onnx", quantized.records)
    assert export.verify(out.path, quantized.model, torch.from_numpy(x), quantized=True)["rel_diff"] < 1e-3
    proto = onnx.load(str(out.path))
    lstm = next(n for n in proto.graph.node if n.op_type == "LSTM")
    dequantized = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    levels = {i.name: i.data_type for i in proto.graph.initializer}
    assert [levels[dequantized[w]] for w in lstm.input[1:3]] == [TensorProto.INT4] * 2  # W and R at 4 bit


class _StepsFirstCrnn(_Crnn):
    """The same recogniser with the output nn.CTCLoss takes: (steps, batch, classes) logits."""

    def forward(self, x):
        f = self.cnn(x)
        n, c, h, w = f.shape
        y, _ = self.rnn(f.permute(3, 0, 1, 2).reshape(w, n, c * h))
        return self.fc(y)


def test_a_steps_first_ctc_head_of_a_fixed_batch_is_read_sample_by_sample_and_scored_as_a_sequence(
        tmp_path, exported_as_vendors_do):
    """ddddocr's OCR file is such a model: batch fixed at 1, LSTM, (steps, 1, classes) logits. Its samples are the
    output's axis 1: joined there and moved first, in ONNX Runtime and in the converted module alike, they are each
    sample's own steps, and the outputs read as CTC logits (a sequence), not as boxes."""
    from edgewise.board.session import open_session, run_samples
    from edgewise.zoo.agreement import output_task

    torch.manual_seed(0)
    model = _StepsFirstCrnn()
    model.fc = nn.Linear(24, 60)  # classes far outnumbering the steps, as a recogniser's charset does
    path = exported_as_vendors_do(model, torch.rand(1, 1, 8, 10), tmp_path / "steps_first.onnx")
    x = np.random.default_rng(0).random((5, 1, 8, 10), dtype=np.float32)
    each = np.stack([_ort(path, x[i:i + 1])[:, 0] for i in range(5)])  # (5, steps, classes)
    (out,) = run_samples(open_session(path, fast=False), x)
    np.testing.assert_allclose(out, each, rtol=1e-5, atol=1e-5)
    module = onnx_to_torch(path, x)
    with torch.no_grad():
        converted = module(torch.from_numpy(x))
    np.testing.assert_allclose(converted.numpy(), each, rtol=1e-4, atol=1e-5)
    assert output_task(converted) == "sequence"


def _recurrent_file(tmp_path, op, direction, layout, **attributes):
    """One LSTM or GRU node of random weights over (steps 5, batch, inputs 3) or batch-first, hidden 4."""
    rng = np.random.default_rng(1)
    gates, dirs = (4 if op == "LSTM" else 3), (2 if direction == "bidirectional" else 1)
    inits = {"W": rng.normal(0, 0.5, (dirs, gates * 4, 3)).astype(np.float32),
             "R": rng.normal(0, 0.5, (dirs, gates * 4, 4)).astype(np.float32),
             "B": rng.normal(0, 0.5, (dirs, 2 * gates * 4)).astype(np.float32)}
    shape = ["n", 5, 3] if layout else [5, "n", 3]
    out_shape = ["n", 5, dirs, 4] if layout else [5, dirs, "n", 4]
    node = helper.make_node(op, ["x", "W", "R", "B"], ["y"], hidden_size=4, direction=direction, layout=layout,
                            **attributes)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    path = tmp_path / f"{op}.onnx"
    onnx.save(model, str(path))
    return path, np.random.default_rng(2).normal(size=(2, 5, 3) if layout else (5, 2, 3)).astype(np.float32)


@pytest.mark.parametrize(("op", "direction", "layout", "attributes"), [
    ("LSTM", "reverse", 0, {}),
    ("LSTM", "bidirectional", 0, {}),
    ("GRU", "forward", 0, {"linear_before_reset": 1}),
    ("GRU", "bidirectional", 0, {"linear_before_reset": 1}),
])  # ONNX Runtime's CPU kernels refuse layout 1 (batch-first), so no file of that layout runs to compare with
def test_recurrent_nodes_convert_and_write_back_exactly(tmp_path, op, direction, layout, attributes):
    path, x = _recurrent_file(tmp_path, op, direction, layout, **attributes)
    module = onnx_to_torch(path, x)
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), _ort(path, x), rtol=1e-5, atol=1e-6)
    onnx.save(source_proto(module), str(tmp_path / "back.onnx"))  # W, R, B in ONNX's gate order again
    np.testing.assert_allclose(_ort(tmp_path / "back.onnx", x), _ort(path, x), rtol=1e-5, atol=1e-6)


def test_what_torch_cannot_compute_is_refused_with_the_attribute(tmp_path):
    path, x = _recurrent_file(tmp_path, "GRU", "forward", 0)  # linear_before_reset=0, ONNX's default
    with pytest.raises(UserError, match="linear_before_reset=0"):
        onnx_to_torch(path, x)
    path, x = _recurrent_file(tmp_path, "LSTM", "forward", 0, clip=3.0)
    with pytest.raises(UserError, match=r"clip=3\.0"):
        onnx_to_torch(path, x)
