"""scikit-learn's handwritten digits (8x8, 1,797 samples, shipped inside the package) with a fixed split."""

from __future__ import annotations

import numpy as np

from edgewise.zoo.dataset import Dataset, make_split, stratified_split

SPLIT_SEED = 20261121


def load_digits_dataset() -> Dataset:
    """Return the digits as (N, 1, 8, 8) inputs in [0, 1]; split 60/20/20 per class, always the same."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = (raw.images.astype(np.float32) / 16.0)[:, None]
    y = raw.target.astype(np.int64)
    train, val, test = stratified_split(y, (0.6, 0.2, 0.2), SPLIT_SEED)
    return Dataset(
        name="digits",
        task="classification",
        class_names=tuple(str(d) for d in range(10)),
        train=make_split(x[train], y[train]),
        val=make_split(x[val], y[val]),
        test=make_split(x[test], y[test]),
    )
