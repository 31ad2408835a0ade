"""Rounding as a plug-in of the grids: error-compensated (GPTQ-style) against round-to-nearest, on exact small cases."""

import numpy as np
import pytest
import torch
from torch import nn

from edgewise.base.grid import symmetric_levels
from edgewise.board.errors import UserError
from edgewise.compress.quant import quantize
from edgewise.compress.quant.ecq import EntropyCost
from edgewise.compress.quant.input_moments import _rows, moment_shape, with_input_moments
from edgewise.compress.quant.rounding import CompensatedRounding, NearestRounding, rounding_named
from edgewise.compress.quant.uniform import UniformGrid
from edgewise.compress.reference import ReferenceSamples


def _correlated(n=512, k=32, seed=0):
    """Inputs whose features are strongly correlated (a few factors mixed), as a trained layer's are."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g) @ torch.randn(4, k, generator=g) + 0.1 * torch.randn(n, k, generator=g)


def _correlated_layer():
    """A linear layer on correlated inputs, its 3-bit per-channel record and grid, its weight and X^T X."""
    torch.manual_seed(0)
    layer = nn.Linear(32, 16, bias=False)
    x = _correlated()
    record = quantize(nn.Sequential(layer), "uniform", 3, per_channel=True, rounding="nearest").records["0"]
    return x, record, UniformGrid(record), layer.weight.detach(), x.T @ x


def _output_error(x, w, levels, steps):
    return float((x @ w.T - x @ (levels.float() * steps).T).norm())


def test_compensated_rounding_moves_a_layers_output_less_than_nearest_on_correlated_inputs():
    x, record, grid, w, hessian = _correlated_layer()
    nearest = NearestRounding().levels(w, grid, hessian)
    compensated = CompensatedRounding().levels(w, grid, hessian)
    assert torch.equal(nearest, torch.from_numpy(record.levels).long())  # nearest is the grid's own rounding
    assert compensated.min() >= record.qmin and compensated.max() <= record.qmax
    assert _output_error(x, w, compensated, grid.steps) < 0.7 * _output_error(x, w, nearest, grid.steps)


def test_without_observed_inputs_compensated_rounding_is_nearest():
    layer = nn.Linear(8, 4)
    record = quantize(nn.Sequential(layer), "uniform", 4, rounding="nearest").records["0"]
    grid = UniformGrid(record)
    assert torch.equal(CompensatedRounding().levels(layer.weight.detach(), grid, None),
                       NearestRounding().levels(layer.weight.detach(), grid, None))


def test_the_rate_term_still_moves_weights_to_zero_under_compensation():
    torch.manual_seed(1)
    w = torch.randn(16, 32) * 0.1
    x = _correlated(seed=2)
    hessian = x.T @ x
    sparsity = []
    for lam in (0.0, 1e-3, 1e-2):
        cost = EntropyCost(w, 0.02, -8, 7, lam)
        sparsity.append(float((CompensatedRounding().levels(w, cost, hessian) == 0).float().mean()))
    assert sparsity[0] < sparsity[1] < sparsity[2]


def test_a_convolutions_rows_are_what_its_flattened_weight_multiplies():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 9, 7)
    for conv in (nn.Conv2d(6, 4, 3, stride=2, padding=1, bias=False),
                 nn.Conv2d(6, 6, 3, padding=1, groups=3, bias=False, padding_mode="reflect"),
                 nn.Conv2d(6, 6, (3, 1), dilation=2, groups=6, bias=False)):
        rows = _rows(conv, x)
        expected = conv(x).permute(0, 2, 3, 1).reshape(-1, conv.out_channels)
        w = conv.weight.detach().reshape(conv.out_channels, -1)
        if conv.groups == 1:
            got = rows @ w.T
        else:
            per = conv.out_channels // conv.groups
            got = torch.cat([rows[g] @ w[g * per:(g + 1) * per].T for g in range(conv.groups)], dim=1)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        assert tuple(torch.zeros(moment_shape(conv)).shape[-2:]) == (rows.shape[-1], rows.shape[-1])
    conv3d = nn.Conv3d(4, 6, (1, 3, 3), stride=(1, 2, 1), padding=(0, 1, 1), dilation=(1, 1, 2), groups=2,
                       bias=False)
    video = torch.randn(2, 4, 3, 7, 9)
    rows, w = _rows(conv3d, video), conv3d.weight.detach().reshape(6, -1)
    torch.testing.assert_close(torch.cat([rows[g] @ w[g * 3:(g + 1) * 3].T for g in range(2)], dim=1),
                               conv3d(video).permute(0, 2, 3, 4, 1).reshape(-1, 6), rtol=1e-5, atol=1e-5)
    conv1d = nn.Conv1d(3, 5, 4, padding=2, bias=False)
    signal = torch.randn(2, 3, 11)
    expected = conv1d(signal).transpose(1, 2).reshape(-1, 5)
    torch.testing.assert_close(_rows(conv1d, signal) @ conv1d.weight.detach().reshape(5, -1).T, expected,
                               rtol=1e-5, atol=1e-5)


def test_layers_are_observed_in_sets_and_see_the_earlier_sets_quantized(monkeypatch):
    import edgewise.compress.quant.input_moments as moments_module

    monkeypatch.setattr(moments_module, "SETS", 2)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    layers = {"0": model[0], "2": model[2], "4": model[4]}
    seen = []

    def quantize_set(moments):
        seen.append(sorted(moments))
        for name in moments:
            layers[name].weight.data.zero_()

    with_input_moments(model, layers, torch.randn(10, 4), 4, quantize_set)
    assert seen == [["0", "2"], ["4"]]


@pytest.mark.parametrize(("method", "settings"), [("uniform", {"per_channel": True}), ("uniform", {"block": 16}),
                                                  ("ecq", {}), ("ecqx", {})])
def test_data_aware_rounding_is_the_default_with_samples_and_its_records_are_the_model(method, settings):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5)).eval()
    x = torch.randn(40, 3, 8, 8)
    with torch.no_grad():
        ref = ReferenceSamples(x, model(x).argmax(1))
    q = quantize(model, method, 4, ref=ref, **settings)
    assert q.history["rounding"] == "compensated"
    for name, record in q.records.items():
        np.testing.assert_array_equal(dict(q.model.named_modules())[name].weight.detach().numpy(),
                                      record.dequantize())
    plain = quantize(model, method, 4, ref=ref, rounding="nearest", **settings)
    assert plain.history["rounding"] == "nearest"
    with torch.no_grad():
        error = [float((m.model(x) - model(x)).norm()) for m in (q, plain)]
    assert error[0] < error[1]


def test_nearest_rounding_gives_the_grids_own_levels():
    torch.manual_seed(0)
    layer = nn.Linear(12, 6)
    q = quantize(nn.Sequential(layer), "uniform", 4, per_channel=True)  # no samples: nearest
    levels, _, _, _ = symmetric_levels(layer.weight.detach().numpy(), 4, 0)
    np.testing.assert_array_equal(q.records["0"].levels, levels)
    assert q.history["rounding"] == "nearest"


def test_an_unknown_rounding_is_refused_with_the_choices():
    with pytest.raises(UserError, match="compensated"):
        rounding_named("adaround", True)
    with pytest.raises(UserError, match="unknown rounding"):
        quantize(nn.Sequential(nn.Linear(2, 2)), "ecq", 4, rounding="stochastic")


def test_learned_rounding_moves_each_weight_to_one_of_its_two_levels_and_the_output_less_than_nearest():
    from edgewise.compress.quant.rounding import LearnedRounding, output_error

    x, record, grid, w, hessian = _correlated_layer()
    learned = LearnedRounding(iterations=300).levels(w, grid, hessian)
    nearest = NearestRounding().levels(w, grid, hessian)
    scaled = w / grid.steps
    assert ((learned == torch.floor(scaled).clamp(record.qmin, record.qmax)) |
            (learned == torch.ceil(scaled).clamp(record.qmin, record.qmax))).all()
    assert (learned != nearest).any()
    assert _output_error(x, w, learned, grid.steps) < 0.9 * _output_error(x, w, nearest, grid.steps)
    errors = [output_error(w, levels.double() * grid.steps.double(), hessian) for levels in (learned, nearest)]
    assert errors[0] < errors[1]
    assert torch.equal(learned, LearnedRounding(iterations=300).levels(w, grid, hessian))  # deterministic


def test_learned_rounding_is_for_grids_that_round_to_nearest():
    from edgewise.compress.quant.rounding import LearnedRounding

    with pytest.raises(UserError, match="rate term"):
        quantize(nn.Sequential(nn.Linear(8, 4)), "ecq", 4, rounding="learned")
    with pytest.raises(UserError, match="rate term"):
        LearnedRounding().levels(torch.randn(4, 8), EntropyCost(torch.randn(4, 8), 0.1, -8, 7, 0.01), None)
    layer = nn.Linear(8, 4)
    quantized = quantize(nn.Sequential(layer), "uniform", 4, rounding="learned")  # no samples: nearest
    assert quantized.history["rounding"] == "learned"
