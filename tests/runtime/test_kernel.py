import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise import compress, export
from edgewise.base.records import QuantizedLayer
from edgewise.runtime import AccumulatorOverflow, IntegerMLP
from edgewise.runtime.kernel import accumulate_bins, accumulate_bitplanes


@st.composite
def layers(draw):
    rows, cols = draw(st.integers(1, 24)), draw(st.integers(1, 40))
    bits = draw(st.integers(2, 4))
    side = draw(st.sampled_from(["twos", "shifted", "unsigned"]))
    qmin = {"twos": -(2 ** (bits - 1)), "shifted": -(2 ** (bits - 1)) + 1, "unsigned": 0}[side]
    qmax = qmin + 2**bits - 1
    seed = draw(st.integers(0, 2**16))
    sparsity = draw(st.floats(0, 0.95))
    rng = np.random.default_rng(seed)
    levels = rng.integers(qmin, qmax + 1, (rows, cols))
    levels[rng.random((rows, cols)) < sparsity] = 0
    x = rng.integers(0, 256, (draw(st.integers(1, 3)), cols))
    return levels.astype(np.int8), qmin, x.astype(np.int64)


@settings(max_examples=150, deadline=None)
@given(layers())
def test_bins_bitplanes_and_gemm_agree_bit_for_bit(case):
    levels, qmin, x = case
    reference = x @ levels.astype(np.int64).T
    assert np.array_equal(accumulate_bins(levels, x), reference)
    assert np.array_equal(accumulate_bitplanes(levels, qmin, x), reference)


def _mlp_records(seed=0, sizes=(20, 16, 12, 5)):
    rng = np.random.default_rng(seed)
    records = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        levels = rng.integers(-8, 8, (n_out, n_in)).astype(np.int8)
        records.append(QuantizedLayer(f"l{i}", "Linear", levels, np.float32(0.05), 4, -8, 7,
                                      bias=rng.normal(0, 0.1, n_out).astype(np.float32)))
    return records


@pytest.mark.parametrize("activation_bits", [4, 8])
def test_modes_give_identical_integers_through_a_whole_mlp(activation_bits):
    mlp = IntegerMLP.from_records(_mlp_records(), np.random.default_rng(1).random((64, 20)), activation_bits)
    x = np.random.default_rng(2).random((10, 20))
    runs = [mlp.run_integers(x, mode) for mode in ("bins", "bitplanes", "fast")]
    for accs, logits in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(runs[0][0], accs, strict=True))
        assert np.array_equal(runs[0][1], logits)


def test_an_overflowing_accumulator_raises():
    mlp = IntegerMLP.from_records(_mlp_records(), np.random.default_rng(1).random((64, 20)), acc_bits=10)
    with pytest.raises(AccumulatorOverflow, match="beyond the 10-bit range"):
        mlp.run(np.ones((1, 20)))


def test_a_convolution_needs_its_window_and_unknown_modes_are_refused():
    conv = QuantizedLayer("c", "Conv2d", np.zeros((2, 1, 3, 3), np.int8), np.float32(1), 4, -8, 7)
    with pytest.raises(Exception, match="whose strides and padding the records do not hold"):
        IntegerMLP.from_records([conv], np.zeros((1, 9)))
    with pytest.raises(Exception, match="unknown kernel mode"):
        IntegerMLP.from_records(_mlp_records(), np.ones((2, 20))).run(np.ones((1, 20)), "magic")


@pytest.mark.slow
def test_digits_mlp_predictions_equal_the_fake_quantized_model(digits_mlp, tmp_path):
    trained, data = digits_mlp
    q = compress.quantize(trained.module, "ecq", 4, lam=0.1)
    mlp = IntegerMLP.from_records(list(q.records.values()), data.train.x.numpy())
    with torch.no_grad():
        expected = q.model(data.test.x).argmax(1).numpy()
    assert np.array_equal(mlp.run(data.test.x.numpy()).argmax(1), expected)
    # the same network read back from its 4-bit ONNX file
    f = export.to_onnx(q.model, data.test.x[:2], tmp_path / "mlp.onnx", q.records)
    from_onnx = IntegerMLP.from_records(export.records_from_onnx(f.path), data.train.x.numpy())
    assert np.array_equal(from_onnx.run(data.test.x.numpy(), "bins").argmax(1), expected)


def test_requantizer_fast_path_equals_the_general_one():
    from edgewise.runtime.activations import Requantizer

    acc = np.random.default_rng(0).integers(0, 2**24, 10_000)
    for scale in (1e-6, 0.0123, 0.5, 3.0):
        r = Requantizer.from_scale(scale, 8)
        assert np.array_equal(r(acc, nonnegative=True), r(acc))
        expected = np.clip(np.floor(acc * scale + 0.5), 0, 255)  # half away from zero for non-negative values
        assert np.abs(r(acc) - expected).max() <= 1  # the 31-bit multiplier may move a tie by one
