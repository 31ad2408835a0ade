import numpy as np

from edgewise.zoo.digits import load_digits_dataset


def test_digits_split_is_fixed_and_stratified():
    a, b = load_digits_dataset(), load_digits_dataset()
    assert np.array_equal(a.test.y.numpy(), b.test.y.numpy())
    assert (len(a.train), len(a.val), len(a.test)) == (1078, 359, 360)
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10
    counts = np.bincount(a.test.y.numpy(), minlength=10)
    assert counts.min() >= 34
    assert float(a.train.x.min()) >= 0.0 and float(a.train.x.max()) <= 1.0
