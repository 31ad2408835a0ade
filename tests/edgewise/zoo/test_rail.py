import numpy as np
import pytest

from edgewise.board.errors import UserError
from edgewise.zoo.rail import RAIL_CLASSES, rail_dataset, render_scene, render_scenes


def test_scenes_are_deterministic_for_a_seed():
    a_img, a_lab = render_scene(64, 64, seed=3, index=5)
    b_img, b_lab = render_scene(64, 64, seed=3, index=5)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    c_img, _ = render_scene(64, 64, seed=4, index=5)
    assert not np.array_equal(a_img, c_img)


def test_scene_k_does_not_depend_on_how_many_are_drawn():
    few, few_lab = render_scenes(48, 3, seed=1)
    many, many_lab = render_scenes(48, 10, seed=1)
    np.testing.assert_array_equal(few, many[:3])
    np.testing.assert_array_equal(few_lab, many_lab[:3])


def test_every_class_appears_and_images_are_normalised():
    images, labels = render_scenes(64, 32, seed=0)
    assert set(np.unique(labels)) == set(range(len(RAIL_CLASSES)))
    assert images.dtype == np.float32 and images.min() >= 0.0 and images.max() <= 1.0
    assert images.shape == (32, 3, 64, 64)


def test_rails_converge_towards_the_horizon():
    _, label = render_scene(256, 256, seed=0, index=0, anomaly_prob=0.0)
    rail_rows = [np.flatnonzero(row == 0) for row in label]
    rows_with_rails = [i for i, cols in enumerate(rail_rows) if len(cols)]
    near, far = rail_rows[rows_with_rails[-1]], rail_rows[rows_with_rails[len(rows_with_rails) // 4]]
    assert near.max() - near.min() > far.max() - far.min()


@pytest.mark.parametrize("size", [32, (40, 72), 512])
def test_any_size_in_range(size):
    images, labels = render_scenes(size, 1, seed=0)
    h, w = (size, size) if isinstance(size, int) else size
    assert images.shape == (1, 3, h, w) and labels.shape == (1, h, w)


@pytest.mark.parametrize("size", [16, 1024])
def test_sizes_out_of_range_are_refused(size):
    with pytest.raises(UserError, match=r"outside 32\.\.512"):
        render_scenes(size, 1)


def test_splits_do_not_share_scenes():
    data = rail_dataset(32, train=4, val=4, test=4)
    assert not any(np.array_equal(a, b) for a in data.train.x.numpy() for b in data.test.x.numpy())
    assert data.task == "segmentation" and data.num_classes == 7
