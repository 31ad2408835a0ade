import copy

import pytest
import torch
from torch import nn

from edgewise.compress.repair import Repair, _grid, _patches, output_error, reconstructable, repair_cut


def _cut(model: nn.Module, first: str, second: str, keep: list[int], reads: list[int] | None = None) -> nn.Module:
    """A copy of `model` with `first`'s output channels cut to `keep` and `second`'s weights to the input columns
    `reads` (default: `keep`), the rest of both untouched."""
    pruned = copy.deepcopy(model)
    a, b = pruned.get_submodule(first), pruned.get_submodule(second)
    linear = isinstance(a, nn.Linear)
    a.weight.data = a.weight.data[keep]
    setattr(a, "out_features" if linear else "out_channels", len(keep))
    if a.bias is not None:
        a.bias.data = a.bias.data[keep]
    b.weight.data = b.weight.data[:, keep if reads is None else reads]
    setattr(b, "in_features" if isinstance(b, nn.Linear) else "in_channels", len(keep))
    return pruned


@pytest.mark.parametrize("budget", [None, 1])
def test_a_channel_the_others_span_is_reconstructed_exactly(budget, monkeypatch):
    """Also when the fit inputs run two at a time (a budget of one byte), refitted in every chunk's pass."""
    from edgewise.compress import batching

    if budget is not None:
        monkeypatch.setattr(batching, "PASS_BUDGET", budget)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 5, 3, padding=1)).eval()
    with torch.no_grad():  # channel 3 is channels 0 + 1: its loss is undone exactly by the layer that reads it
        model[0].weight[3] = model[0].weight[0] + model[0].weight[1]
        model[0].bias[3] = model[0].bias[0] + model[0].bias[1]
    pruned = _cut(model, "0", "1", [0, 1, 2])
    x = torch.randn(40, 3, 8, 8)
    assert reconstructable(model, pruned, {}) == ["1"]
    report = repair_cut(model, pruned, x, {}, Repair(batchnorm=False, ridge=0.0))
    assert report.error_before > 1e-2
    assert report.error_after < 1e-10
    assert report.parts == [{"part": "reconstruct", "error": report.error_after, "kept": True, "layers": ["1"]}]
    assert pruned[1].weight.shape == (5, 3, 3, 3)


@pytest.mark.parametrize("budget", [None, 1])
def test_a_grouped_and_a_linear_consumer_are_refitted_and_the_error_falls(budget, monkeypatch):
    from edgewise.compress import batching

    if budget is not None:
        monkeypatch.setattr(batching, "PASS_BUDGET", budget)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 36, 4)).eval()
    x = torch.randn(64, 3, 6, 6)
    # one channel gone from each of the two groups; the grouped weight's columns are numbered within a group
    pruned = _cut(model, "0", "2", [0, 1, 2, 4, 5, 6], reads=[0, 1, 2])
    before = output_error(model, pruned, x)
    report = repair_cut(model, pruned, x, {}, Repair(batchnorm=False))
    assert report.parts[0]["layers"] == ["2"]
    assert report.error_after < before
    assert pruned[2].weight.shape == (8, 3, 3, 3)


def test_output_channels_it_lost_are_matched_by_their_original_index():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 5), nn.Linear(5, 3)).eval()
    pruned = _cut(model, "0", "1", [0, 2, 3, 4, 5])
    pruned = _cut(pruned, "1", "2", [0, 1, 3, 4])  # layer 1 reads fewer inputs and lost its output 2
    x = torch.randn(200, 6)
    assert reconstructable(model, pruned, {}) == ["2"]  # layer 1's kept outputs are unknown: left alone
    assert reconstructable(model, pruned, {"1": [0, 1, 3, 4]}) == ["1", "2"]
    report = repair_cut(model, pruned, x, {"1": [0, 1, 3, 4]}, Repair(batchnorm=False))
    assert report.parts[0]["kept"] and report.parts[0]["layers"] == ["1", "2"]
    assert report.error_after < report.error_before


def test_a_part_that_does_not_help_is_undone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1)).eval()
    pruned = _cut(model, "0", "2", [0, 1, 2])
    state = copy.deepcopy(pruned.state_dict())
    report = repair_cut(model, pruned, torch.randn(20, 3, 8, 8), {}, Repair(batchnorm=False, ridge=1e9))
    assert report.parts[0]["kept"] is False
    assert report.error_after == report.error_before
    assert all(torch.equal(state[k], v) for k, v in pruned.state_dict().items())


def test_batchnorm_statistics_are_re_estimated_and_kept_where_they_help():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 1, bias=False),
                          nn.BatchNorm2d(4)).eval()
    x = torch.randn(64, 3, 8, 8) + 2.0
    with torch.no_grad():
        model.train()(x)  # statistics of the data, as training left them
    model.eval()
    pruned = _cut(model, "0", "3", [0, 1, 2, 3])
    pruned[1].weight.data, pruned[1].bias.data = model[1].weight[:4].clone(), model[1].bias[:4].clone()
    pruned[1].running_mean, pruned[1].running_var = model[1].running_mean[:4].clone(), model[1].running_var[:4].clone()
    pruned[1].num_features = 4
    report = repair_cut(model, pruned, x, {}, Repair(reconstruct=False))
    assert report.parts[0]["part"] == "batchnorm"
    assert report.parts[0]["layers"] == ["1", "4"]
    assert report.parts[0]["kept"] == (report.parts[0]["error"] < report.error_before)
    assert report.error_after <= report.error_before
    assert not pruned[1].training and pruned[1].momentum == 0.1


@pytest.mark.parametrize("layer", [nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2),
                                   nn.Conv2d(4, 4, (1, 3), padding=(0, 1), groups=4), nn.Conv1d(4, 6, 5, stride=2,
                                                                                               padding=2),
                                   nn.Linear(4, 3)])
def test_the_rows_gathered_at_sampled_positions_compute_the_layers_output_there(layer):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4) if isinstance(layer, nn.Linear) else torch.randn(3, 4, 9, 11)[..., 0, :] if isinstance(
        layer, nn.Conv1d) else torch.randn(3, 4, 9, 11)
    with torch.no_grad():
        grid = _grid(layer, layer(x))
        positions = torch.randperm(len(grid))[:17]
        rows = _patches(layer, x, positions)  # (groups, positions, features)
        weight = layer.weight.reshape(rows.shape[0], -1, rows.shape[-1])  # (groups, outputs per group, features)
        computed = (rows @ weight.transpose(1, 2)).transpose(0, 1).reshape(len(positions), -1) + layer.bias
    torch.testing.assert_close(computed, grid[positions])
