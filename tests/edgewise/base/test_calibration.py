import numpy as np
import pytest

from edgewise.base.calibration import activation_bounds, activation_range
from edgewise.board.errors import UserError


def _with_outliers():
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=200_000))
    x[:20] = 40.0  # 0.01% of the values, 10x the bulk
    return x


def test_max_and_percentile():
    x = _with_outliers()
    assert activation_range(x, "max") == 40.0
    assert 3.2 < activation_range(x, "percentile", percentile=99.9) < 3.4  # the half-normal's 99.9th percentile: 3.29
    assert activation_range(np.zeros(5), "max") == 1.0  # a positive scale for a dead layer


def test_entropy_clips_rare_outliers_and_keeps_a_dense_range():
    x = _with_outliers()
    assert activation_range(x, "entropy", bits=8, signed=False) < 6.0
    uniform = np.random.default_rng(1).uniform(0, 3.0, 100_000)
    assert activation_range(uniform, "entropy", bits=8, signed=False) > 2.9  # nothing to clip: the whole range


def test_bad_calibration_input_is_a_user_error():
    with pytest.raises(UserError, match="unknown activation calibrator 'minmax'"):
        activation_range(np.ones(3), "minmax")
    with pytest.raises(UserError, match="not finite"):
        activation_range(np.array([1.0, np.nan]), "max")
    with pytest.raises(UserError, match="percentile 0"):
        activation_range(np.ones(3), "percentile", percentile=0)


def test_the_kernel_takes_every_calibrator(digits_mlp):
    from edgewise import compress
    from edgewise.runtime import IntegerMLP

    trained, data = digits_mlp
    q = compress.quantize(trained.module, "uniform", 4)
    x, y = data.test.x.numpy(), data.test.y.numpy()
    accuracy = {}
    for calibrator in ("max", "percentile", "entropy", "mse"):
        mlp = IntegerMLP.from_records(list(q.records.values()), data.train.x.numpy(), 8, calibrator=calibrator)
        assert mlp.meta["calibrator"] == calibrator
        accuracy[calibrator] = float((mlp.run(x, "bins").argmax(1) == y).mean())
    assert all(abs(a - accuracy["max"]) <= 0.03 for a in accuracy.values()), accuracy


def test_mse_clips_a_long_tail_and_keeps_a_dense_range():
    tail = np.abs(np.random.default_rng(0).laplace(size=1_000_000))  # max 15.3
    at_8, at_4 = (activation_range(tail, "mse", bits=b, signed=False) for b in (8, 4))
    assert 9.0 < at_8 < 13.0 and 4.0 < at_4 < at_8  # coarser steps: clipping pays off sooner
    # 0.01% outliers at 10x the bulk cost more clipped than rounded at 8 bits: mse keeps them, unlike percentile
    assert activation_range(_with_outliers(), "mse", bits=8, signed=False) > 30.0
    uniform = np.random.default_rng(1).uniform(0, 3.0, 100_000)
    assert activation_range(uniform, "mse", bits=8, signed=False) > 2.9


def test_bounds_follow_each_tail_and_always_hold_zero():
    rng = np.random.default_rng(0)
    skewed = np.concatenate([rng.uniform(-0.375, 0.0, 1000), rng.uniform(0.0, 20.0, 100_000)])  # a hardswish output
    assert activation_bounds(skewed, "max") == (skewed.min(), skewed.max())
    low, high = activation_bounds(skewed, "percentile", percentile=99.0)
    assert -0.375 < low < 0.0 and 19.0 < high < 20.0
    assert activation_bounds(np.array([2.0, 3.0]), "max") == (0.0, 3.0)  # zero stays exactly representable
    assert activation_bounds(np.zeros(4), "mse") == (0.0, 1.0)
    low, high = activation_bounds(np.concatenate([skewed, [4000.0]]), "mse", bits=4)
    assert low < 0.0 and 15.0 < high < 4000.0 * 0.5  # the one outlier is clipped, the bulk kept
    for method in ("entropy", "mse"):
        low, high = activation_bounds(skewed, method)
        assert skewed.min() <= low <= 0.0 < high <= skewed.max()


def test_entropy_with_all_mass_beyond_the_first_candidates_is_quiet():
    import warnings

    x = np.concatenate([np.full(1000, 50.0), [0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert 0.0 < activation_range(x, "entropy", bits=8, signed=False) <= 50.0
