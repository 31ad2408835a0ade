"""LSTM and GRU weights quantized as the conv and linear ones are: one record per matrix, written into the layer."""

import numpy as np
import pytest
import torch
from torch import nn

from edgewise.base.records import load_records, save_records
from edgewise.compress.codec import decode, encode
from edgewise.compress.quant import quantize
from edgewise.compress.quant.model import floats_of, load_decoded
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.size import float_bytes, packed_bytes, weight_count


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(6, 8, num_layers=2, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(16, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x)
        y, _ = self.gru(y)
        return self.head(y[:, -1])


@pytest.fixture(scope="module")
def tagger():
    torch.manual_seed(0)
    model = Tagger().eval()
    x = torch.randn(32, 7, 6)
    with torch.no_grad():
        return model, ReferenceSamples(x, model(x).argmax(1))


MATRICES = [f"rnn.weight_{k}_l{layer}{d}" for layer in (0, 1) for d in ("", "_reverse") for k in ("ih", "hh")] + \
    ["gru.weight_ih_l0", "gru.weight_hh_l0"]


@pytest.mark.parametrize(("method", "settings"), [("uniform", {"per_channel": True}), ("ecq", {}), ("ecqx", {}),
                                                  ("uniform", {"block": 16})])
def test_every_recurrent_matrix_gets_a_record_whose_weight_the_layer_computes_with(tagger, method, settings):
    model, ref = tagger
    q = quantize(model, method, 4, ref=ref, **settings)
    assert sorted(q.records) == sorted([*MATRICES, "head"])
    state = q.model.state_dict()
    for name in MATRICES:
        record = q.records[name]
        assert record.kind == ("LSTM" if name.startswith("rnn") else "GRU")
        assert record.weight_key == name and record.bias is None
        np.testing.assert_array_equal(state[name].numpy(), record.dequantize())
        assert len(np.unique(record.levels)) <= 16
    assert not torch.equal(model.rnn.weight_ih_l0, q.model.rnn.weight_ih_l0)  # the source model is not changed


def test_the_recurrent_matrices_of_ecqx_are_assigned_by_ecq_and_the_others_by_ecqx(tagger):
    model, ref = tagger
    q = quantize(model, "ecqx", 4, ref=ref)
    assert {q.records[n].method for n in MATRICES} == {"ecq"}
    assert q.records["head"].method == "ecqx"


def test_ignoring_a_recurrent_layer_leaves_all_its_matrices_in_float(tagger):
    model, _ = tagger
    q = quantize(model, "uniform", 4, ignore=("rnn",))
    assert sorted(q.records) == ["gru.weight_hh_l0", "gru.weight_ih_l0", "head"]
    assert torch.equal(q.model.rnn.weight_hh_l1_reverse, model.rnn.weight_hh_l1_reverse)


def test_recurrent_records_decode_back_into_the_model(tagger):
    model, _ = tagger
    q = quantize(model, "uniform", 4, per_channel=True)
    floats = floats_of(q.model, q.records)
    assert "rnn.weight_ih_l0" not in floats and "rnn.bias_ih_l0" in floats
    decoded = load_decoded(Tagger(), q.records, floats)
    for key, value in q.model.state_dict().items():
        assert torch.equal(decoded.state_dict()[key], value), key


def test_recurrent_records_round_trip_through_nncodec_and_the_records_file(tagger, tmp_path):
    model, _ = tagger
    q = quantize(model, "ecq", 4)
    back, floats = decode(encode(q.records, floats_of(q.model, q.records)).data)
    save_records(tmp_path / "r.npz", q.records, floats)
    from_file, _ = load_records(tmp_path / "r.npz")
    for records in (back, from_file):
        for name in MATRICES:
            assert records[name].kind == q.records[name].kind and records[name].weight_key == name
            np.testing.assert_array_equal(records[name].dequantize(), q.records[name].dequantize())
    decoded = load_decoded(Tagger(), back, floats)
    assert torch.equal(decoded.rnn.weight_hh_l1_reverse, q.model.rnn.weight_hh_l1_reverse)


def test_the_packed_size_counts_recurrent_matrices_at_their_bit_width(tagger):
    model, _ = tagger
    q = quantize(model, "uniform", 4)
    matrices = sum(q.model.state_dict()[n].numel() for n in MATRICES)
    assert weight_count(q.model) == matrices + q.model.head.weight.numel()
    assert float_bytes(q.model) - packed_bytes(q.model, q.records) > 3 * matrices  # 4 bytes -> half a byte each
