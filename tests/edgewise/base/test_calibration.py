import numpy as np
import pytest

from edgewise.base.calibration import activation_range
from edgewise.base.errors import UserError


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
    for calibrator in ("max", "percentile", "entropy"):
        mlp = IntegerMLP.from_records(list(q.records.values()), data.train.x.numpy(), 8, calibrator=calibrator)
        assert mlp.meta["calibrator"] == calibrator
        accuracy[calibrator] = float((mlp.run(x, "bins").argmax(1) == y).mean())
    assert all(abs(a - accuracy["max"]) <= 0.03 for a in accuracy.values()), accuracy
