import pytest

from edgewise.base.errors import UserError
from edgewise.compress.schedules import iterative_rates, predicted_remaining, simulated_remaining


def test_lambert_w_prediction_matches_the_seed_example():
    assert predicted_remaining(100, 0.3) == pytest.approx(40.1421, abs=1e-3)


def test_simulated_recursion_stops_near_the_prediction():
    for c0, sf in ((100, 0.3), (1000, 0.6), (300, 0.9)):
        simulated = simulated_remaining(c0, sf)
        assert abs(simulated - predicted_remaining(c0, sf)) <= 0.05 * c0 + 1


def test_iterative_rates():
    assert iterative_rates(0.2, 0.05) == [0.05, 0.1, 0.15, 0.2]
    assert iterative_rates(0.12, 0.05) == [0.05, 0.1, 0.12]
    with pytest.raises(UserError):
        iterative_rates(0.5, 0.0)


def test_sf_out_of_range():
    with pytest.raises(UserError, match="SF"):
        predicted_remaining(100, 1.2)
