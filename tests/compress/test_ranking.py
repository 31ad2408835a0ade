import pytest
import torch

from edgewise.board.errors import UserError
from edgewise.compress.ranking import Ranking, adaptive_removal, normalize, plan_removal


def test_global_ranking_without_normalisation_takes_the_lowest_anywhere():
    scores = {"a": torch.tensor([1.0, 2.0, 3.0, 4.0]), "b": torch.tensor([10.0, 20.0, 30.0, 40.0])}
    removal = plan_removal(scores, {"a": 4, "b": 4}, 0.5, Ranking(normalization="none"))
    assert removal == {"a": [0, 1, 2], "b": [0]}  # a keeps its min_channels = 1


def test_sum_normalisation_makes_layers_comparable():
    scores = {"a": torch.tensor([1.0, 2.0, 3.0, 4.0]), "b": torch.tensor([10.0, 20.0, 30.0, 40.0])}
    removal = plan_removal(scores, {"a": 4, "b": 4}, 0.5, Ranking(normalization="sum"))
    assert removal == {"a": [0, 1], "b": [0, 1]}
    assert float(normalize(scores["a"], "l2").norm()) == pytest.approx(1.0)


def test_per_layer_rate_and_rounding():
    scores = {"a": torch.arange(20.0), "b": torch.arange(10.0).flip(0)}
    removal = plan_removal(scores, {"a": 20, "b": 10}, 0.5, Ranking(scope="layer"))
    assert removal == {"a": list(range(10)), "b": list(range(5, 10))}
    rounded = plan_removal(scores, {"a": 20, "b": 10}, 0.5, Ranking(scope="layer", round_to=8))
    assert len(rounded["a"]) == 4 and len(rounded["b"]) == 2  # keeps 16 and 8
    assert rounded["a"] == [0, 1, 2, 3]


def test_a_group_no_wider_than_the_rounding_is_cut_to_any_count():
    scores = {"narrow": torch.arange(8.0), "wide": torch.arange(24.0)}
    removal = plan_removal(scores, {"narrow": 8, "wide": 24}, 0.5, Ranking(scope="layer", round_to=8))
    assert removal == {"narrow": [0, 1, 2, 3], "wide": list(range(8))}  # keeps 4 (unrounded) and 16


def test_adaptive_threshold_removes_below_median_times_sf_power():
    scores = {"a": torch.arange(1.0, 11.0)}  # median (lower) 5
    removal = adaptive_removal(scores, {"a": 10}, 0.5, Ranking())
    assert removal == {"a": [0, 1]}  # threshold 5 * 0.5 ** 1 = 2.5


def test_bad_rankings():
    with pytest.raises(UserError):
        Ranking(scope="everywhere")
    with pytest.raises(UserError):
        Ranking(normalization="max")
    with pytest.raises(UserError):
        Ranking(min_channels=0)
