"""An exported graph's weights named as the records name them, found by value where the exporter named them else."""

import numpy as np
import torch
from onnx import numpy_helper
from torch import nn

from edgewise import compress, export
from edgewise.compress.layers import gate_rows
from edgewise.export.onnx_export import export_proto


class Sequence(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 6)
        self.rnn = nn.LSTM(6, 5, bidirectional=True, batch_first=True)
        self.gru = nn.GRU(10, 3, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(self.embed(x))
        return self.gru(y)[0]


def test_a_linear_layer_on_a_sequence_and_recurrent_weights_get_the_records_names():
    torch.manual_seed(0)
    model = Sequence().eval()
    proto = export_proto(model, torch.randn(2, 7, 4))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    # the dynamo exporter holds the linear layer transposed for a MatMul, under a name of its own
    np.testing.assert_array_equal(inits["embed.weight"], model.embed.weight.detach().numpy().T)
    lstm = next(n for n in proto.graph.node if n.op_type == "LSTM")
    assert list(lstm.input[1:3]) == ["rnn.weight_ih_l0", "rnn.weight_hh_l0"]
    rows = gate_rows("LSTM", 20, to_onnx=True)
    np.testing.assert_array_equal(inits["rnn.weight_hh_l0"][1], model.rnn.weight_hh_l0_reverse.detach().numpy()[rows])
    gru = next(n for n in proto.graph.node if n.op_type == "GRU")
    assert list(gru.input[1:3]) == ["gru.weight_ih_l0", "gru.weight_hh_l0"]


def test_gate_rows_restack_between_torch_and_onnx_and_back():
    for kind, gates in (("LSTM", 4), ("GRU", 3)):
        weight = np.arange(gates * 2)
        onnx_order = weight[gate_rows(kind, weight.size, to_onnx=True)]
        np.testing.assert_array_equal(onnx_order[gate_rows(kind, weight.size, to_onnx=False)], weight)
    # torch's LSTM gates i, f, g, o are ONNX's i, o, f, c
    assert gate_rows("LSTM", 4, to_onnx=True).tolist() == [0, 3, 1, 2]
    assert gate_rows("GRU", 3, to_onnx=True).tolist() == [1, 0, 2]


class Encoder(nn.Module):
    """Resemblyzer's voice encoder in small: torch's exporter slices and stacks a unidirectional LSTM's W and R from
    its parameters at run time, under the parameters' own names."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(5, 8, num_layers=2, batch_first=True)
        self.linear = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(x)
        return self.linear(hidden[-1])


def test_recurrent_weights_computed_at_run_time_are_folded_and_named(tmp_path):
    torch.manual_seed(0)
    model = Encoder().eval()
    proto = export_proto(model, torch.randn(2, 6, 5))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    lstms = [n for n in proto.graph.node if n.op_type == "LSTM"]
    assert [list(n.input[1:3]) for n in lstms] == [[f"lstm.weight_ih_l{k}", f"lstm.weight_hh_l{k}"] for k in (0, 1)]
    rows = gate_rows("LSTM", 32, to_onnx=True)
    np.testing.assert_array_equal(inits["lstm.weight_ih_l1"][0], model.lstm.weight_ih_l1.detach().numpy()[rows])
    assert "lstm.weight_ih_l0_source" not in inits  # the parameter W was made of is gone with the nodes that read it
    assert not {v.name for v in proto.graph.value_info} & set(inits)
    q = compress.quantize(model, "uniform", 4, per_channel=True)
    out = export.to_onnx(q.model, torch.randn(1, 6, 5), tmp_path / "q.onnx", q.records)
    assert export.verify(out.path, q.model, torch.randn(4, 6, 5), quantized=True)["rel_diff"] < 1e-4
