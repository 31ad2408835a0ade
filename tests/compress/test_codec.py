import numpy as np
import pytest
import torch

from edgewise import compress
from edgewise.base.records import QuantizedLayer, load_records, save_records
from edgewise.compress.codec import CodecError, decode, encode
from edgewise.zoo.models import build_model


def _records():
    rng = np.random.default_rng(0)
    levels = np.clip(np.round(rng.normal(0, 1.5, (64, 32))), -8, 7).astype(np.int8)
    conv = np.clip(np.round(rng.normal(0, 2, (8, 4, 3, 3))), -7, 8).astype(np.int8)
    return {
        "fc": QuantizedLayer("fc", "Linear", levels, np.float32(0.0123), 4, -8, 7,
                             bias=rng.normal(0, 1, 64).astype(np.float32), method="ecq"),
        "conv": QuantizedLayer("conv", "Conv2d", conv, rng.random(8).astype(np.float32), 4, -7, 8, axis=0),
    }


def test_round_trip_is_bit_exact():
    records = _records()
    floats = {"bn.running_var": np.array([1e-30, 3.5, -0.0], dtype=np.float32)}
    stream = encode(records, floats)
    back, back_floats = decode(stream.data)
    for name, r in records.items():
        assert np.array_equal(back[name].levels, r.levels)
        assert back[name].step.tobytes() == r.step.tobytes()
        assert (back[name].bias is None) == (r.bias is None)
        assert back[name].qmin == r.qmin and back[name].axis == r.axis
    assert back["fc"].bias.tobytes() == records["fc"].bias.tobytes()
    assert back_floats["bn.running_var"].tobytes() == floats["bn.running_var"].tobytes()
    packed = sum(r.packed_bytes() + (0 if r.bias is None else 4 * r.bias.size) for r in records.values())
    assert stream.payload_bytes < packed + 12  # entropy coding beats nibble packing
    assert len(stream.data) - stream.payload_bytes < 300  # the container's own overhead stays small


@pytest.mark.parametrize("where", [0.2, 0.5, 0.9])
def test_a_flipped_byte_is_detected(where):
    data = bytearray(encode(_records()).data)
    data[int(len(data) * where)] ^= 0x40
    with pytest.raises(CodecError):
        decode(bytes(data))


def test_truncation_and_garbage_are_detected():
    data = encode(_records()).data
    with pytest.raises(CodecError, match="truncated"):
        decode(data[:-10])
    with pytest.raises(CodecError, match="bad magic"):
        decode(b"\x00" * 100)


def test_a_quantized_model_round_trips_through_nncodec():
    torch.manual_seed(0)
    model = build_model("vgg", (1, 8, 8), 10).eval()
    q = compress.quantize(model, "ecq", 4, lam=0.1)
    stream = compress.encode(q.records, compress.floats_of(q.model, q.records))
    records, floats = compress.decode(stream.data)
    rebuilt = compress.load_decoded(build_model("vgg", (1, 8, 8), 10), records, floats)
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(rebuilt(x), q.model(x))


def test_records_npz_round_trip(tmp_path):
    records = _records()
    save_records(tmp_path / "q.npz", records, {"x": np.ones(3, np.float32)})
    back, floats = load_records(tmp_path / "q.npz")
    assert set(back) == set(records) and np.array_equal(back["conv"].levels, records["conv"].levels)
    assert np.array_equal(back["conv"].dequantize(), records["conv"].dequantize())
    assert floats["x"].tolist() == [1, 1, 1]
