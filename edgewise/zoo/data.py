"""Data specifications as recipes write them, and the loader that turns one into a Dataset."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgewise.board.system import available_memory

if TYPE_CHECKING:
    from edgewise.zoo.dataset import Dataset


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DigitsData(_Spec):
    """scikit-learn's handwritten digits, 8x8 grey-scale, 10 classes, fixed 60/20/20 split."""

    name: Literal["digits"] = "digits"


class RailData(_Spec):
    """Procedural rail scenes (7 classes), `size` pixels square, `train`/`val`/`test` scenes each."""

    name: Literal["rail"] = "rail"
    size: int = Field(64, ge=32, le=512)
    train: int = Field(512, ge=1)
    val: int = Field(128, ge=1)
    test: int = Field(128, ge=1)
    seed: int = 0
    anomaly_prob: float = Field(0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _fits_in_memory(self) -> RailData:
        # the scenes are generated in memory (float32 RGB and int64 label maps): more than is free is refused here,
        # before generation, instead of a MemoryError after it
        scenes = self.train + self.val + self.test
        need, free = scenes * self.size * self.size * (3 * 4 + 8), available_memory()
        if need > free:
            raise ValueError(f"{scenes:,} rail scenes of {self.size}x{self.size} take {need / 2**30:,.1f} GiB of "
                             f"memory, more than the {free / 2**30:.1f} GiB free here; give fewer (train, val, test)")
        return self


class FolderData(_Spec):
    """A folder of images per class, resized to `size` (H, W); grey-scale or RGB."""

    name: Literal["folder"] = "folder"
    path: Path
    size: tuple[int, int] = (32, 32)
    grayscale: bool = False


class NpzData(_Spec):
    """A `.npz` of arrays (x, y or per-split x_train ... y_test), classification or segmentation."""

    name: Literal["npz"] = "npz"
    path: Path
    class_names: tuple[str, ...] | None = None


DataSpec = Annotated[DigitsData | RailData | FolderData | NpzData, Field(discriminator="name")]
DATA_SOURCES: dict[str, type[_Spec]] = {"digits": DigitsData, "rail": RailData, "folder": FolderData, "npz": NpzData}


def load_data(spec: DigitsData | RailData | FolderData | NpzData) -> Dataset:
    """Load (or generate) the data set `spec` describes; repeated calls in one process reuse it."""
    return _load_cached(spec)


@functools.lru_cache(maxsize=8)
def _load_cached(spec: _Spec) -> Dataset:
    if isinstance(spec, DigitsData):
        from edgewise.zoo.digits import load_digits_dataset

        return load_digits_dataset()
    if isinstance(spec, RailData):
        from edgewise.zoo.rail import rail_dataset

        return rail_dataset(spec.size, spec.train, spec.val, spec.test, spec.seed, spec.anomaly_prob)
    if isinstance(spec, FolderData):
        from edgewise.zoo.userdata import load_folder

        return load_folder(spec.path, spec.size, spec.grayscale)
    from edgewise.zoo.userdata import load_npz

    return load_npz(spec.path, spec.class_names)
