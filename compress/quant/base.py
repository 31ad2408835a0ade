"""The quantizer plug-in interface: turn a model's chosen weight layers into records and quantized weights."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from edgewise.board.errors import UserError
from edgewise.compress.quant.model import QuantizedModel
from edgewise.compress.reference import ReferenceSamples


class Quantizer(abc.ABC):
    """A weight quantizer, registered by `name` in `edgewise.compress.quant.QUANTIZERS`.

    `needs_reference` says whether reference samples are read (ECQx's relevances); `trainable`
    whether quantization-aware training can follow the initial assignment. The settings a recipe
    gives (lambda, per_channel, rho, p) are the constructor's keyword arguments.
    """

    name: ClassVar[str]
    needs_reference: ClassVar[bool] = False
    trainable: ClassVar[bool] = False
    rounding: str = "nearest"  # a plug-in without a rounding setting finds its levels itself

    def reads_samples(self) -> bool:
        """Whether quantizing reads reference samples: relevances (`needs_reference`), or the calibration inputs of a
        data-aware rounding (edgewise.compress.quant.rounding)."""
        return self.needs_reference or self.rounding != "nearest"

    @abc.abstractmethod
    def quantize(self, model: nn.Module, layers: dict[str, nn.Module], bits: int, ref: ReferenceSamples | None,
                 train: Callable[..., QuantizedModel] | None) -> QuantizedModel:
        """Quantize `layers` (modules of `model`, a working copy) in place; return the model and its records."""

    def trained(self, model: nn.Module, layers: dict[str, nn.Module], bits: int, ref: ReferenceSamples | None,
                quantized: QuantizedModel, floats: dict[str, torch.Tensor], train: Callable[..., QuantizedModel]
                ) -> QuantizedModel:
        """Quantization-aware training (`train`, bound to data) from the post-training result `quantized` that
        `model` holds, `floats` being the layers' float weights before it. A quantizer that is not `trainable`
        refuses: its levels come from its grid alone, with nothing for training to move."""
        raise UserError(f"{self.name} has no quantization-aware training",
                        "quantize with ecq or ecqx to train, or leave the training epochs out")

    def describe(self) -> dict[str, Any]:
        """The quantizer's name and settings, for reports and records."""
        return {"method": self.name, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}
