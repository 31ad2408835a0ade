"""Checking that a model someone brings (a torch file or an ONNX file) takes the data's samples and answers in kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgewise.base.errors import DataError
from edgewise.compress.outputs import pick
from edgewise.zoo.dataset import Dataset


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
    probe = data.val.x[:2].numpy()
    if data.reference is not None:  # the labels are this model's own outputs: it took the samples and answered so
        return
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


def check_module_fits(module: nn.Module, data: Dataset, source: Path, device: torch.device | None = None) -> None:
    """`check_fits` for a torch module (on `device`, the CPU by default), run in eval mode so that a probe never moves
    its batch-norm statistics; the module is handed back in the mode it had."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            check_fits(lambda x: module(torch.from_numpy(x).to(device or "cpu")).cpu().numpy(), data, source)
    finally:
        module.train(was_training)


def with_model_classes(module: nn.Module, data: Dataset, device: torch.device | None = None) -> Dataset:
    """`data` with as many classes as the classifier `module` answers (its output's width) when that is more than the
    labels show: calibration data often holds some of a model's classes, and the class count is the model's."""
    if data.task != "classification":
        return data
    was_training = module.training
    try:
        with torch.no_grad():
            out = pick(module.eval()(data.val.x[:2].to(device or "cpu")))
    except Exception:  # check_module_fits says what is wrong with the samples
        return data
    finally:
        module.train(was_training)
    if out.dim() != 2 or out.shape[1] <= data.num_classes:
        return data
    names = data.class_names + tuple(str(k) for k in range(data.num_classes, out.shape[1]))
    return replace(data, class_names=names)
