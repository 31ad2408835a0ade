import pytest
import torch

from edgewise.compress.reference import ReferenceSamples


def random_reference(shape, classes=10, n=20, segmentation=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=g)
    y = torch.randint(0, classes, (n, *shape[1:]) if segmentation else (n,), generator=g)
    return ReferenceSamples(x, y, "segmentation" if segmentation else "classification", batch_size=10)


@pytest.fixture
def reference():
    return random_reference
