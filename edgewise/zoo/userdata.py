"""User data: a folder with one sub-folder of images per class, or a `.npz` of arrays.

Folder layout: `root/<class name>/*.png|jpg|jpeg|bmp|gif|webp`; classes are the sub-folder names
in sorted order. `.npz` layout: either `x_train, y_train, x_val, y_val, x_test, y_test`, or just
`x, y` (split 60/20/20 here, stratified for classification). `x` is (N, C, H, W) or (N, H, W),
float in [0, 1] or uint8 (scaled by 1/255); `y` is (N,) for classification or (N, H, W) for
segmentation. Without `y` (`x` alone, or `x_train, x_val, x_test`) the data is unlabelled: the model it
goes with labels it (edgewise.zoo.agreement). A folder of images without class sub-folders is
unlabelled too.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from edgewise.base.npz import check_fits_in_memory
from edgewise.board.errors import DataError, first_line
from edgewise.zoo.dataset import UNLABELLED, Dataset, Split, make_split, stratified_split

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
SPLIT_SEED = 0
# more classes than any classification data set in use (ImageNet-21k has 21841): a larger label is a mistake
MAX_CLASSES = 100_000


def _split_arrays(x: np.ndarray, y: np.ndarray, stratify: bool, source: str = "the data") -> list[np.ndarray]:
    """Indices of a 60/20/20 train/val/test split (stratified by class for classification); a split that comes out
    empty is a DataError: a model scored on no samples has no score."""
    if stratify:
        parts = stratified_split(y, (0.6, 0.2, 0.2), SPLIT_SEED)
    else:
        order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
        n_train, n_val = round(0.6 * len(x)), round(0.2 * len(x))
        parts = [np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_val]), np.sort(order[n_train + n_val:])]
    empty = [name for name, part in zip(("train", "val", "test"), parts, strict=True) if not len(part)]
    if empty:
        fewest = f"{int(np.bincount(y).min())} sample(s) in its smallest class" if stratify else f"{len(x)} samples"
        raise DataError(f"{source} has {fewest}: too few for a 60/20/20 train/val/test split ({', '.join(empty)} "
                        "would be empty)", "give at least 5 samples per class (or x_train, x_val, x_test in an .npz)")
    return parts


def _as_inputs(x: np.ndarray, source: str) -> np.ndarray:
    """Images (N, H, W) or (N, C, H, W) as float32 in [0, 1] (uint8 scaled); other data as it is, integer data
    (tokens, bytes) keeping its dtype and float data as float32."""
    if x.ndim < 2:
        raise DataError(f"{source}: inputs have shape {x.shape}, one value per sample",
                        "give inputs of shape (N, ...): one sample per row")
    if x.ndim in (3, 4) and x.dtype == np.uint8:
        return (x if x.ndim == 4 else x[:, None]).astype(np.float32) / 255.0
    if x.ndim == 3 and np.issubdtype(x.dtype, np.floating):
        x = x[:, None]  # grey images without a channel axis
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        return x
    return x.astype(np.float32)


def _read_image(file: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image as uint8 (H, W) or (H, W, 3) of `size`. A 16-bit image is scaled to 8 bits (Pillow's own conversion
    clips it, which turns a 16-bit scan into a white page); an image too large to decode (Pillow's bomb limit) or a
    broken file is a DataError."""
    from PIL import Image

    try:
        with Image.open(file) as img:
            if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
                wide = np.asarray(img, dtype=np.float64)
                img = Image.fromarray(np.round(wide * (255.0 / 65535.0)).clip(0, 255).astype(np.uint8), "L")
            return np.asarray(img.convert(mode).resize((size[1], size[0]), Image.BILINEAR), dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise DataError(f"image {file} is too large to decode: {first_line(exc)}",
                        "downscale the image before giving it to the kit") from None
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow raises SyntaxError for some malformed headers
        raise DataError(f"cannot read image {file}: {first_line(exc)}", "remove or replace the broken file") from None


def _image_array(file: Path, grayscale: bool, size: tuple[int, int]) -> np.ndarray:
    """One image as uint8 (C, H, W)."""
    arr = _read_image(file, "L" if grayscale else "RGB", size)
    return arr[None] if grayscale else arr.transpose(2, 0, 1)


def unlabelled(x: np.ndarray, name: str, source: str) -> Dataset:
    """Inputs without labels as a data set of task UNLABELLED, split 60/20/20 (labels all 0 until a model's outputs
    replace them)."""
    parts = _split_arrays(x, np.zeros(len(x), dtype=np.int64), stratify=False, source=source)
    train, val, test = (_unlabelled_split(x[p]) for p in parts)
    return Dataset(name=name, task=UNLABELLED, class_names=(), train=train, val=val, test=test)


def _unlabelled_split(x: np.ndarray) -> Split:
    inputs = torch.from_numpy(np.ascontiguousarray(x if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)))
    return Split(inputs, torch.zeros(len(x), dtype=torch.int64))


def load_folder(path: str | Path, size: tuple[int, int] = (32, 32), grayscale: bool = False) -> Dataset:
    """Load a folder of images per class, resized to `size` (H, W), as a classification data set."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist", "give the path of a folder with one sub-folder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    loose = sorted(f for f in root.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not classes and loose:  # images without class folders: unlabelled
        x = np.stack([_image_array(f, grayscale, size) for f in loose]).astype(np.float32) / 255.0
        return unlabelled(x, f"folder:{root.name}", f"data folder {root}")
    if len(classes) < 2:
        raise DataError(f"data folder {root} has {len(classes)} class sub-folders, need at least 2",
                        "put each class's images in its own sub-folder: root/<class>/<image>.png")
    xs, ys = [], []
    for label, cls in enumerate(classes):
        files = sorted(f for f in (root / cls).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"class folder {root / cls} holds no images",
                            f"add images ({', '.join(sorted(IMAGE_SUFFIXES))}) or remove the folder")
        for f in files:
            xs.append(_image_array(f, grayscale, size))
            ys.append(label)
    x = np.stack(xs).astype(np.float32) / 255.0
    y = np.asarray(ys, dtype=np.int64)
    parts = _split_arrays(x, y, stratify=True, source=f"data folder {root}")
    train, val, test = (make_split(x[p], y[p]) for p in parts)
    return Dataset(name=f"folder:{root.name}", task="classification", class_names=tuple(classes),
                   train=train, val=val, test=test)


def _check_arrays(arrays: dict[str, np.ndarray], file: Path) -> None:
    """Refuse arrays no model can learn from: empty ones, non-finite inputs, labels that are not integers."""
    for key, values in arrays.items():
        if values.ndim == 0:
            raise DataError(f"{file}: {key} is a single value, not an array of samples",
                            "save arrays with one row per sample")
        if len(values) == 0:
            raise DataError(f"{file}: {key} holds no samples", "save at least one sample per class")
        if key.startswith("x") and np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            raise DataError(f"{file}: {key} holds NaN or infinite values", "clean or drop those samples")
        whole = np.issubdtype(values.dtype, np.integer) or (
            np.issubdtype(values.dtype, np.floating) and bool(np.all(np.mod(values, 1) == 0)))
        if key.startswith("y") and not whole:
            raise DataError(f"{file}: {key} holds labels that are not class indices ({values.dtype}, e.g. "
                            f"{values.reshape(-1)[0]!r})", "save integer labels 0..K-1")


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a `.npz` the user gives, every failure a DataError: missing, damaged or truncated, an empty
    array, non-finite inputs (x...), labels (y...) that are not class indices."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file {file} does not exist", "give the path of a .npz file")
    try:
        check_fits_in_memory(file, float_copies=2, role="the data")  # the float32 version and its split
        arrays = dict(np.load(file, allow_pickle=False))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {file} as .npz (damaged or truncated?): {exc}",
                        "save it again with numpy.savez") from exc
    _check_arrays(arrays, file)
    return arrays


def _load_unlabelled(arrays: dict[str, np.ndarray], file: Path) -> Dataset:
    """An .npz of inputs alone: `x` (split here) or `x_train, x_val, x_test`."""
    if {"x_train", "x_val", "x_test"} <= arrays.keys():
        splits = [_unlabelled_split(_as_inputs(arrays[f"x_{s}"], str(file))) for s in ("train", "val", "test")]
        return Dataset(name=f"npz:{file.stem}", task=UNLABELLED, class_names=(), train=splits[0], val=splits[1],
                       test=splits[2])
    if "x" not in arrays:
        raise DataError(f"{file} holds arrays {sorted(arrays)}",
                        "save x (and y when there are labels), or x_train, x_val, x_test (and y_train, y_val, y_test)")
    return unlabelled(_as_inputs(arrays["x"], str(file)), f"npz:{file.stem}", str(file))


def load_npz(path: str | Path, class_names: tuple[str, ...] | None = None) -> Dataset:
    """Load a `.npz` of arrays (see the module docstring) as a classification or segmentation data set."""
    file = Path(path)
    arrays = read_npz(file)
    if not any(key.startswith("y") for key in arrays):
        return _load_unlabelled(arrays, file)
    if {"x_train", "y_train", "x_val", "y_val", "x_test", "y_test"} <= arrays.keys():
        split_arrays = {s: (_as_inputs(arrays[f"x_{s}"], str(file)), arrays[f"y_{s}"])
                        for s in ("train", "val", "test")}
    elif {"x", "y"} <= arrays.keys():
        x, y = _as_inputs(arrays["x"], str(file)), arrays["y"]
        if len(x) != len(y):
            raise DataError(f"{file}: x has {len(x)} samples but y has shape {y.shape}",
                            "give one label (or label map) per sample")
        parts = _split_arrays(x, y, stratify=y.ndim == 1, source=str(file))
        split_arrays = {s: (x[p], y[p]) for s, p in zip(("train", "val", "test"), parts, strict=True)}
    else:
        raise DataError(f"{file} holds arrays {sorted(arrays)}",
                        "save x and y, or x_train, y_train, x_val, y_val, x_test, y_test")
    y_all = np.concatenate([y.reshape(-1) for _, y in split_arrays.values()])
    y_train = split_arrays["train"][1]
    task = "classification" if y_train.ndim == 1 else "segmentation"
    for s, (x, y) in split_arrays.items():
        expected = (len(x),) if task == "classification" else (len(x), *x.shape[2:])
        if y.shape != expected:
            raise DataError(f"{file}: y_{s} has shape {y.shape}, expected {expected} for {task}",
                            "labels need one entry per sample (or per pixel for segmentation)")
    if y_all.min() < 0:
        raise DataError(f"{file}: labels must be non-negative class indices", "map labels to 0..K-1")
    num_classes = int(y_all.max()) + 1
    if num_classes > MAX_CLASSES:  # calibration data may hold a few of a large model's classes: sparse labels are fine
        raise DataError(f"{file}: labels go up to {num_classes - 1}, more classes than any data set has",
                        f"map labels to 0..K-1 (K at most {MAX_CLASSES})")
    names = class_names or tuple(str(k) for k in range(num_classes))
    if len(names) < num_classes:
        raise DataError(f"{file}: labels go up to {num_classes - 1} but {len(names)} class names were given",
                        "give one name per class")
    splits = {s: make_split(x, y) for s, (x, y) in split_arrays.items()}
    return Dataset(name=f"npz:{file.stem}", task=task, class_names=tuple(names), **splits)
