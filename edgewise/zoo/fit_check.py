"""Checking that a model someone brings (a torch file or an ONNX file) takes the data's samples and answers in kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgewise.board.errors import DataError
from edgewise.compress.modes import evaluating
from edgewise.compress.outputs import pick
from edgewise.zoo.dataset import Dataset, Split


def expected_output(data: Dataset, batch: int) -> tuple[int, ...]:
    """The output shape a model of `data`'s task must give for `batch` samples: logits, or per-pixel logits."""
    if data.task == "segmentation":
        return (batch, data.num_classes, *data.input_shape[1:])
    return (batch, data.num_classes)


def check_fits(run: Callable[[np.ndarray], np.ndarray], data: Dataset, source: Path) -> None:
    """Run two validation samples through `run`; a refusal or an output of the wrong shape is a DataError.

    The message names the model file, the data's input shape and what came back, so the fix is
    plain: resize the data (folder `size`, `grayscale`) or give the model the data was made for.
    """
    if data.reference is not None:  # the labels are this model's own outputs: it took the samples and answered so
        return
    probe = data.val.x[:2].numpy()
    try:
        out = np.asarray(run(probe))
    except Exception as exc:
        raise DataError(f"model {source} does not take the data's samples of shape {list(data.input_shape)}: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                        "give data of the shape the model was built for (a folder's size and grayscale), "
                        "or the model built for this data") from None
    wanted = expected_output(data, len(probe))
    if tuple(out.shape) != wanted:
        raise DataError(f"model {source} answers {list(out.shape)} for 2 samples; the {data.task} data with "
                        f"{data.num_classes} classes needs {list(wanted)}",
                        "give the model that was trained for these classes, or data with its classes")


def evaluated(module: nn.Module, x: torch.Tensor, device: torch.device | None = None) -> Any:
    """`module`'s output on `x` (moved to `device`, the CPU by default) in eval mode without gradients, so that a probe
    never moves its batch-norm statistics; the module is handed back in the mode it had, also when it fails."""
    with torch.no_grad(), evaluating(module):
        return module(x.to(device or "cpu"))


def check_module_fits(module: nn.Module, data: Dataset, source: Path, device: torch.device | None = None) -> None:
    """`check_fits` for a torch module (on `device`, the CPU by default), run through `evaluated`."""
    check_fits(lambda x: evaluated(module, torch.from_numpy(x), device).cpu().numpy(), data, source)


def with_model_classes(module: nn.Module, data: Dataset, device: torch.device | None = None) -> Dataset:
    """`data` with as many classes as the classifier `module` answers (its output's width) when that is more than the
    labels show: calibration data often holds some of a model's classes, and the class count is the model's."""
    if data.task != "classification":
        return data
    try:
        out = pick(evaluated(module, data.val.x[:2], device))
    except Exception:  # check_module_fits says what is wrong with the samples
        return data
    if out.dim() != 2 or out.shape[1] <= data.num_classes:
        return data
    names = data.class_names + tuple(str(k) for k in range(data.num_classes, out.shape[1]))
    return replace(data, class_names=names)


def module_takes(module: nn.Module, device: torch.device | None = None) -> Callable[[torch.Tensor], bool]:
    """Whether `module` runs on a batch of samples (`evaluated`: any refusal means the layout does not fit)."""
    def takes(x: torch.Tensor) -> bool:
        try:
            evaluated(module, x, device)
        except Exception:  # any refusal: the layout does not fit
            return False
        return True
    return takes


def onnx_takes(path: str | Path) -> Callable[[torch.Tensor], bool]:
    """Whether the ONNX file's first input has the rank of a batch of samples (a converted model's torch ops
    broadcast what the file refuses, so the file decides)."""
    from edgewise.export.onnx_file import read_onnx

    proto = read_onnx(path, external_data=False)
    inits = {t.name for t in proto.graph.initializer}
    first = next((i for i in proto.graph.input if i.name not in inits), None)
    rank = len(first.type.tensor_type.shape.dim) if first is not None else 0
    return lambda x: not rank or x.dim() == rank


def fitted_layout(data: Dataset, takes: Callable[[torch.Tensor], bool]) -> Dataset:
    """`data` with the channel axis the .npz reader gives 3-D inputs (grey images) taken off again when the model
    takes the samples only without it (feature sequences of shape (N, frames, features))."""
    x = data.val.x[:2]
    if x.dim() < 3 or x.shape[1] != 1 or takes(x) or not takes(x[:, 0]):
        return data
    return replace(data, **{name: Split(getattr(data, name).x[:, 0], getattr(data, name).y)
                            for name in ("train", "val", "test")})
