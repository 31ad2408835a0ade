"""Board estimates: a known layer by hand, the precision TensorRT would give each layer, ranges and labels."""

import pytest

from edgewise.bench.counts import Counts, LayerCount
from edgewise.bench.estimate import estimate, precision_of
from edgewise.board.errors import UserError
from edgewise.targets import load_target


def _counts(*layers):
    return Counts(sum(layer.macs for layer in layers), sum(layer.macs for layer in layers), 0, 0, 0, list(layers))


CONV = LayerCount("conv", "Conv", macs=10**9, weight_bytes=4 * 10**6, activation_bytes=4 * 10**6, weight_bits=32)


def test_a_compute_bound_layer_by_hand():
    orin = load_target("jetson-orin-nx")
    e = estimate(orin, _counts(CONV))
    peak = 8 * 1024 * 918e6  # SMs x FP16 tensor MACs per SM and clock x the MAXN clock
    compute = 1e9 / (peak * 0.57)
    traffic = (4e6 / 2 + 4e6 / 2) / (102.4e9 * 0.33)  # activations and weights at 2 bytes (fp16)
    assert compute > traffic
    assert e["latency_s"] == pytest.approx(compute + 15e-6 + 0.35e-3)
    assert e["kind"] == "estimated" and e["precisions"] == {"fp16": 1} and e["layers_bound"]["compute"] == 1
    assert e["range_s"] == pytest.approx([e["latency_s"] * 0.77, e["latency_s"] * 1.55])
    assert e["energy_j"] == pytest.approx(25 * e["latency_s"]) and e["power_mode"] == "MAXN"
    int8 = estimate(orin, _counts(CONV), precision="int8", include_host=False)
    assert int8["latency_s"] == pytest.approx(1e9 / (8 * 2048 * 918e6 * 0.36) + 15e-6)


def test_a_memory_bound_layer_and_the_dlas_do_not_count():
    big = LayerCount("fc", "MatMul", macs=10**6, weight_bytes=4 * 10**8, activation_bytes=4000, weight_bits=32)
    e = estimate(load_target("jetson-agx-orin"), _counts(big), include_host=False)
    assert e["layers_bound"]["memory"] == 1
    assert e["latency_s"] == pytest.approx((2e8 + 2000) / (204.8e9 * 0.33) + 15e-6)


def test_the_precision_each_layer_runs_at():
    int4_gemm = LayerCount("fc", "MatMul", 1, 1, 1, weight_bits=4)
    int4_conv = LayerCount("conv", "Conv", 1, 1, 1, weight_bits=4)
    qdq = LayerCount("conv", "Conv", 1, 1, 1, weight_bits=8, int8_activations=True)
    assert precision_of(int4_gemm, None) == "int4", "weight-only 4-bit GEMMs exist in TensorRT"
    assert precision_of(int4_conv, None) == "fp16", "4-bit convolutions are dequantized to fp16"
    assert precision_of(qdq, None) == "int8" and precision_of(CONV, "fp32") == "fp32"
    tiny = estimate(load_target("jetson-orin-nx"), _counts(int4_gemm, int4_conv))
    assert tiny["precisions"] == {"int4": 1, "fp16": 1}


def test_a_4bit_model_is_not_faster_by_its_weight_size_ratio():
    small = LayerCount("fc", "MatMul", macs=12_800, weight_bytes=4 * 12_800, activation_bytes=4 * 200, weight_bits=32)
    packed = LayerCount("fc", "MatMul", macs=12_800, weight_bytes=12_800 // 2, activation_bytes=4 * 200, weight_bits=4)
    orin = load_target("jetson-orin-nx")
    ratio = estimate(orin, _counts(small))["latency_s"] / estimate(orin, _counts(packed))["latency_s"]
    assert ratio < 1.05, "a tiny model is bound by launches and the host, whatever its weights weigh"


def test_boards_without_published_points_say_so_and_unknown_modes_are_refused():
    assert estimate(load_target("jetson-nano"), _counts(CONV))["calibrated"] is False
    with pytest.raises(UserError, match="no power mode '7W' with a known GPU clock"):
        estimate(load_target("jetson-orin-nano"), _counts(CONV), power_mode="7W")
    with pytest.raises(UserError, match="no GPU figures"):
        estimate(load_target("x86-host"), _counts(CONV))
