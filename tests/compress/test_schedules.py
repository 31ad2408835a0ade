import pytest

from edgewise.board.errors import UserError
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


@pytest.mark.parametrize("step", [1e-9, 0.009])
def test_more_iterative_steps_than_allowed_are_refused_before_any_is_made(step):
    """A step of 1e-9 built 5e8 cumulative rates and ended in a MemoryError after 425 s."""
    with pytest.raises(UserError, match="more than the 50 allowed") as caught:
        iterative_rates(0.5, step)
    assert "at least 0.01" in caught.value.fix
    assert len(iterative_rates(0.5, 0.001, max_steps=500)) == 500


def test_a_recipe_with_an_endless_schedule_fails_its_check():
    from pydantic import ValidationError

    from edgewise.stages.prune_config import PruneConfig

    with pytest.raises(ValidationError, match="500,000,000 steps"):
        PruneConfig(rate=0.5, schedule="iterative", step=1e-9)
    assert PruneConfig(rate=0.5, schedule="oneshot", step=1e-9).step == 1e-9  # a one-shot cut takes no steps


def test_sf_out_of_range():
    with pytest.raises(UserError, match="SF"):
        predicted_remaining(100, 1.2)
