import numpy as np
import pytest
from PIL import Image

from edgewise.board.errors import DataError
from edgewise.zoo.userdata import load_folder, load_npz


def _write_images(root, classes=("cat", "dog"), per_class=10):
    rng = np.random.default_rng(0)
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.random((20, 30, 3)) * 100 + 100 * k).astype(np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")


def test_folder_of_images_per_class(tmp_path):
    _write_images(tmp_path)
    data = load_folder(tmp_path, size=(16, 24))
    assert data.class_names == ("cat", "dog")
    assert data.input_shape == (3, 16, 24)
    assert len(data.train) + len(data.val) + len(data.test) == 20
    assert set(data.train.y.tolist()) == {0, 1}
    grey = load_folder(tmp_path, size=(8, 8), grayscale=True)
    assert grey.input_shape == (1, 8, 8)


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_folder(tmp_path / "missing")
    (tmp_path / "only").mkdir()
    with pytest.raises(DataError, match="need at least 2"):
        load_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_folder(tmp_path)


def test_npz_classification_and_segmentation(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cls.npz", x=rng.random((50, 8, 8)).astype(np.float32), y=np.arange(50) % 5)
    data = load_npz(tmp_path / "cls.npz")
    assert data.task == "classification" and data.num_classes == 5 and data.input_shape == (1, 8, 8)
    seg = {f"x_{s}": rng.integers(0, 255, (4, 3, 16, 16), dtype=np.uint8) for s in ("train", "val", "test")}
    seg.update({f"y_{s}": rng.integers(0, 3, (4, 16, 16)) for s in ("train", "val", "test")})
    np.savez(tmp_path / "seg.npz", **seg)
    data = load_npz(tmp_path / "seg.npz", class_names=("a", "b", "c"))
    assert data.task == "segmentation" and data.class_names == ("a", "b", "c")
    assert float(data.train.x.max()) <= 1.0


def test_npz_errors_name_the_problem(tmp_path):
    np.savez(tmp_path / "bad.npz", images=np.zeros((3, 4, 4)))
    with pytest.raises(DataError, match=r"save x \(and y when there are labels\)"):
        load_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "shape.npz", x=np.zeros((10, 4, 4)), y=np.zeros((9,), dtype=int))
    with pytest.raises(DataError, match="shape"):
        load_npz(tmp_path / "shape.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read"):
        load_npz(tmp_path / "junk.npz")


def test_a_16_bit_image_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    from edgewise.zoo.userdata import load_folder

    for cls, level in (("dark", 10_000), ("light", 50_000)):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray(np.full((8, 8), level, np.uint16)).save(tmp_path / cls / f"{i}.png")
    data = load_folder(tmp_path, size=(8, 8), grayscale=True)
    values = sorted({round(float(v), 2) for split in (data.train, data.val, data.test) for v in split.x.unique()})
    assert values == [round(round(10_000 * 255 / 65535) / 255, 2), round(round(50_000 * 255 / 65535) / 255, 2)]
