"""4-bit weights in ONNX for LSTM and GRU layers: W and R as INT4 initializers under a blocked DequantizeLinear."""

import dataclasses

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, numpy_helper
from torch import nn

from edgewise import compress, export
from edgewise.export.w4a8 import to_w4a8


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 6)
        self.rnn = nn.LSTM(6, 8, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = nn.GRU(16, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(torch.relu(self.embed(x)))
        return self.head(self.gru(y)[0])


@pytest.fixture(scope="module")
def tagger():
    torch.manual_seed(0)
    model = Tagger().eval()
    x = torch.randn(16, 9, 4)
    with torch.no_grad():
        return model, compress.ReferenceSamples(x, model(x).argmax(-1), "sequence")


def _four_bit(path):
    proto = onnx.load(str(path))
    inits = {i.name: i for i in proto.graph.initializer}
    producers = {o: n for n in proto.graph.node for o in n.output}
    recurrent = [n for n in proto.graph.node if n.op_type in ("LSTM", "GRU")]
    for node in recurrent:
        for tensor in node.input[1:3]:
            dq = producers[tensor]
            assert dq.op_type == "DequantizeLinear" and tensor not in inits
            assert inits[dq.input[0]].data_type in (TensorProto.INT4, TensorProto.UINT4)
    return recurrent


@pytest.mark.parametrize(("method", "settings"), [("uniform", {"per_channel": True}), ("ecq", {"lam": 0.1}),
                                                  ("uniform", {"block": 16})])
def test_recurrent_layers_export_at_4_bit_and_onnx_runtime_computes_the_quantized_model(tagger, tmp_path, method,
                                                                                         settings):
    model, ref = tagger
    q = compress.quantize(model, method, 4, ref=ref, **settings)
    out = export.to_onnx(q.model, ref.x[:1], tmp_path / "q.onnx", q.records)
    assert len(_four_bit(out.path)) == 3  # two LSTM layers, one GRU
    assert export.verify(out.path, q.model, ref.x, quantized=True)["rel_diff"] < 1e-4


def test_a_shifted_grid_in_one_direction_stores_the_tensor_unsigned_with_each_directions_zero_point(tagger,
                                                                                                    tmp_path):
    model, ref = tagger
    q = compress.quantize(model, "uniform", 4, per_channel=True)
    name = "rnn.weight_ih_l0_reverse"
    record = q.records[name]
    q.records[name] = dataclasses.replace(record, levels=np.clip(record.levels, -7, 7) + 1, qmin=-7, qmax=8)
    with torch.no_grad():
        q.model.rnn.weight_ih_l0_reverse.copy_(torch.from_numpy(q.records[name].dequantize()))
    out = export.to_onnx(q.model, ref.x[:1], tmp_path / "q.onnx", q.records)
    assert export.verify(out.path, q.model, ref.x, quantized=True)["rel_diff"] < 1e-4
    inits = {i.name: i for i in onnx.load(str(out.path)).graph.initializer}
    assert inits["rnn.weight_ih_l0_q"].data_type == TensorProto.UINT4
    zero_points = numpy_helper.to_array(inits["rnn.weight_ih_l0_zp"])
    for direction, suffix in enumerate(("", "_reverse")):
        assert set(zero_points[direction].ravel().tolist()) == {-q.records[f"rnn.weight_ih_l0{suffix}"].qmin}


def test_w4a8_keeps_recurrent_layers_at_4_bit_weights_and_float_activations(tagger, tmp_path):
    model, ref = tagger
    q = compress.quantize(model, "uniform", 4, per_channel=True)
    out = to_w4a8(q.model, ref.x[:1], tmp_path / "w.onnx", q.records, ref.x.numpy())
    assert len(_four_bit(out.path)) == 3
    proto = onnx.load(str(out.path))
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)  # the linear layers read 8-bit ones
    check = export.verify(out.path, q.model, ref.x, quantized=True)
    assert check["rel_diff"] < 0.05 and sorted(out.quantized_layers) == sorted(q.records)


def test_records_of_another_model_are_refused_naming_the_recurrent_weight(tagger, tmp_path):
    model, ref = tagger
    q = compress.quantize(model, "uniform", 4, per_channel=True)
    other = compress.quantize(model, "uniform", 3, per_channel=True)
    with pytest.raises(export.ExportError, match=r"rnn\.weight_ih_l0"):
        export.to_onnx(q.model, ref.x[:1], tmp_path / "q.onnx", other.records)
    assert not (tmp_path / "q.onnx").exists()
