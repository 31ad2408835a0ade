"""Weight quantizers as plug-ins (uniform, ECQ, ECQx at 2 to 8 bits), their registry, and `quantize` over a model."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from edgewise.base.device import device_of
from edgewise.base.errors import UserError
from edgewise.compress.detectors import detection_output
from edgewise.compress.outputs import OutputKey, pick, scoring
from edgewise.compress.quant.base import Quantizer
from edgewise.compress.quant.entropy_constrained import ECQQuantizer, ECQxQuantizer
from edgewise.compress.quant.model import QuantizedModel, weight_layers_to_quantize
from edgewise.compress.quant.uniform import UniformQuantizer
from edgewise.compress.reference import ReferenceSamples

QUANTIZERS: dict[str, type[Quantizer]] = {
    "uniform": UniformQuantizer,
    "ecq": ECQQuantizer,
    "ecqx": ECQxQuantizer,
}


def quantizer_settings(method: str) -> tuple[str, ...]:
    """The settings (constructor keywords) of the quantizer registered as `method`."""
    if method not in QUANTIZERS:
        raise UserError(f"unknown quantization method {method!r}", f"use one of {', '.join(QUANTIZERS)}")
    return tuple(n for n in inspect.signature(QUANTIZERS[method].__init__).parameters if n != "self")


def get_quantizer(method: str | Quantizer, **settings: Any) -> Quantizer:
    """The quantizer registered as `method`, built with `settings`, or `method` itself when already built. A setting
    the method does not take is an error naming it and the ones it takes: ignoring it would quantize otherwise
    than asked, without a word."""
    if isinstance(method, Quantizer):
        if settings:
            raise UserError(f"settings {', '.join(sorted(settings))} were given with a built quantizer",
                            "give them to the quantizer's constructor instead")
        return method
    accepted = quantizer_settings(method)
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise UserError(f"quantizer {method!r} takes no setting {', '.join(unknown)}",
                        f"its settings are {', '.join(accepted) or 'none'}")
    return QUANTIZERS[method](**settings)


def quantize(model: nn.Module, method: str | Quantizer = "ecq", bits: int = 4, *,
             ref: ReferenceSamples | None = None, ignore: tuple[str, ...] = (),
             train: Callable[..., QuantizedModel] | None = None, output: OutputKey = None,
             **settings: Any) -> QuantizedModel:
    """Quantize every conv/linear weight of a copy of `model` to `bits` and return the model and its records.

    `method` names a registered quantizer (uniform: symmetric round-to-nearest per layer, or per
    output channel with per_channel=True; ecq: entropy-constrained assignment with global
    `lam`; ecqx: ECQ whose zero cluster is guarded by LRP weight relevances computed on `ref`,
    with rho and p) or is a Quantizer. Biases and BatchNorm stay float. `train`, when given, is
    `edgewise.compress.quant.qat.train_quantized` bound to data: quantization-aware training
    from the initial assignment (ECQ and ECQx). A model returning several tensors, or one that is
    not a class score, has its relevance taken at the tensor `output` names, as in `prune` (for
    detection samples by default a known detector's class scores). The input model is not changed.
    """
    quantizer = get_quantizer(method, **settings)
    if not 2 <= bits <= 8:
        raise UserError(f"bit width must be within 2..8, got {bits}", "use e.g. 4")
    if output is None and ref is not None and ref.task == "detection":
        output = detection_output(model)
    work = copy.deepcopy(model).eval()
    layers = weight_layers_to_quantize(work, ignore)
    trainer = train if quantizer.trainable else None
    if ref is None or not quantizer.needs_reference or trainer is not None:
        return quantizer.quantize(work, layers, bits, ref, trainer)
    example = ref.x[:1].to(device_of(work))
    with torch.no_grad():  # an output name the model lacks is refused before any work
        pick(work(example), output)
    with scoring(work, example, output):
        return quantizer.quantize(work, layers, bits, ref, None)


__all__ = ["QUANTIZERS", "QuantizedModel", "Quantizer", "get_quantizer", "quantize", "quantizer_settings"]
