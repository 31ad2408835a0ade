"""Weight quantizers as plug-ins (uniform, ECQ, ECQx at 2 to 8 bits), their registry, and `quantize` over a model."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from edgewise.base.errors import UserError
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


def get_quantizer(method: str | Quantizer, **settings: Any) -> Quantizer:
    """The quantizer registered as `method`, built with the settings it takes (a recipe gives every method all of
    lambda, per_channel, rho and p; each takes its own), or `method` itself when already built."""
    if isinstance(method, Quantizer):
        return method
    if method not in QUANTIZERS:
        raise UserError(f"unknown quantization method {method!r}", f"use one of {', '.join(QUANTIZERS)}")
    cls = QUANTIZERS[method]
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in settings.items() if k in accepted})


def quantize(model: nn.Module, method: str | Quantizer = "ecq", bits: int = 4, *,
             ref: ReferenceSamples | None = None, ignore: tuple[str, ...] = (),
             train: Callable[..., QuantizedModel] | None = None, **settings: Any) -> QuantizedModel:
    """Quantize every conv/linear weight of a copy of `model` to `bits` and return the model and its records.

    `method` names a registered quantizer (uniform: symmetric round-to-nearest per layer, or per
    output channel with per_channel=True; ecq: entropy-constrained assignment with global
    `lam`; ecqx: ECQ whose zero cluster is guarded by LRP weight relevances computed on `ref`,
    with rho and p) or is a Quantizer. Biases and BatchNorm stay float. `train`, when given, is
    `edgewise.compress.quant.qat.train_quantized` bound to data: quantization-aware training
    from the initial assignment (ECQ and ECQx). The input model is not changed.
    """
    quantizer = get_quantizer(method, **settings)
    if not 2 <= bits <= 8:
        raise UserError(f"bit width must be within 2..8, got {bits}", "use e.g. 4")
    work = copy.deepcopy(model).eval()
    layers = weight_layers_to_quantize(work, ignore)
    return quantizer.quantize(work, layers, bits, ref, train if quantizer.trainable else None)


__all__ = ["QUANTIZERS", "QuantizedModel", "Quantizer", "get_quantizer", "quantize"]
