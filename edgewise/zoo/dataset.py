"""The in-memory data set record every stage consumes: three splits, the task and the classes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

TASKS = ("classification", "segmentation")
UNLABELLED = "unlabelled"
"""The task of data given without labels: a model scores on it only once the source model's outputs label it
(edgewise.zoo.agreement)."""


@dataclass(frozen=True)
class Split:
    """One split: inputs `x` (N, ...) and labels `y` (N,) or (N, H, W) int64.

    Images are (N, C, H, W) float32 in [0, 1]; other data keeps its shape, and integer data (tokens,
    bytes) its dtype.
    """

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class Dataset:
    """A data set with fixed train/val/test splits, its task and the names of its classes.

    `reference` is None when the labels came with the data; otherwise they are a source model's outputs on it, and
    it says which (scores are then agreement with that model).
    """

    name: str
    task: str
    class_names: tuple[str, ...]
    train: Split
    val: Split
    test: Split
    reference: str | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes (output channels of a model for this data)."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample: (C, H, W) for images."""
        return tuple(int(d) for d in self.train.x.shape[1:])

    def fingerprint(self) -> str:
        """sha256 over every split's bytes: two data sets with equal fingerprints are the same data."""
        h = hashlib.sha256(f"{self.task}|{','.join(self.class_names)}".encode())
        for split in (self.train, self.val, self.test):
            h.update(split.x.numpy().tobytes())
            h.update(split.y.numpy().tobytes())
        return h.hexdigest()


def stratified_split(y: np.ndarray, fractions: tuple[float, float, float], seed: int) -> list[np.ndarray]:
    """Split sample indices into train/val/test with every class in the given proportions."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_train = round(len(idx) * fractions[0])
        n_val = round(len(idx) * fractions[1])
        for part, chunk in zip(parts, (idx[:n_train], idx[n_train:n_train + n_val], idx[n_train + n_val:]),
                               strict=True):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def make_split(x: np.ndarray, y: np.ndarray) -> Split:
    """Wrap numpy arrays as a Split with the kit's dtypes (float32 inputs, int64 labels)."""
    return Split(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                 torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)))
