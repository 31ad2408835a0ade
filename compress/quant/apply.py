"""`quantize`: a registered quantizer over every conv/linear weight of a copy of a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from edgewise.base.device import device_of
from edgewise.compress.arguments import check_bits, check_module, check_reference, run_on_samples
from edgewise.compress.copying import model_copy
from edgewise.compress.detectors import detection_output
from edgewise.compress.outputs import OutputKey, scoring
from edgewise.compress.quant import get_quantizer
from edgewise.compress.quant.base import Quantizer
from edgewise.compress.quant.model import QuantizedModel, weight_layers_to_quantize
from edgewise.compress.reference import ReferenceSamples


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
    check_module(model)
    bits = check_bits(bits)
    quantizer = get_quantizer(method, **settings)
    if ref is not None:
        check_reference(ref)
    if output is None and ref is not None and ref.task == "detection":
        output = detection_output(model)
    work = model_copy(model).eval()
    if ref is not None:  # inputs the model does not take, labels outside its classes, an output name it lacks
        run_on_samples(work, ref, output, count=1)
    layers = weight_layers_to_quantize(work, ignore)
    trainer = train if quantizer.trainable else None
    floats = {n: m.weight.detach().clone() for n, m in layers.items()} if trainer is not None else {}
    if ref is None or not quantizer.needs_reference:
        quantized = quantizer.quantize(work, layers, bits, ref, None)
    else:  # relevances read the scored tensor; training reads the model's own outputs
        with scoring(work, ref.x[:1].to(device_of(work)), output):
            quantized = quantizer.quantize(work, layers, bits, ref, None)
    return quantized if trainer is None else quantizer.trained(work, layers, bits, ref, quantized, floats, trainer)
