"""The ONNX op handlers: per op type, how each of its versions becomes torch and how its weights are written back.

onnx2torch converts op by op from a registry keyed by (domain, op type, since-version), and it stops at the versions
of 2023 (opset 17): today's exporters write opsets 18 to 21. A handler carries converters for the versions it
covers and, for ops that hold weights in a torch layer of their own (LSTM, GRU), the function that writes that
layer's tensors back into the ONNX node's inputs. Handlers are plug-ins like criteria and quantizers: the kit's own
are named in `ONNX_OPS`, another package adds one with `register_op_handler` or an entry point of the group
`edgewise.onnx_ops`, and `install` puts every one into onnx2torch's registry before a conversion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgewise.base.registry import Registry

Converter = Callable[[Any, Any], Any]
"""onnx2torch's converter signature: (OnnxNode, OnnxGraph) -> OperationConverterResult."""
WeightWriter = Callable[[Any, Any], dict[int, tuple[str, Any]]]
"""(torch layer, onnx NodeProto) -> {node input index: (tensor name suffix, tensor in ONNX's layout)}."""


@dataclass(frozen=True)
class OpHandler:
    """One ONNX op type of `domain` ("" is the standard domain): a converter per since-version it covers, and for a
    weight-carrying torch layer of its own (`layer`), the `write_back` of that layer's tensors."""

    op_type: str
    converters: dict[int, Converter]
    domain: str = ""
    layer: type | None = None
    write_back: WeightWriter | None = None


ONNX_OPS: Registry[OpHandler] = Registry("ONNX op handler", "edgewise.onnx_ops", {
    **{op: f"edgewise.onnxin.versions:{op.upper()}" for op in (
        "Identity", "Reshape", "Shape", "Cast", "Constant", "ConstantOfShape", "Flatten", "Transpose", "Unsqueeze",
        "Equal", "GreaterOrEqual", "LessOrEqual", "IsInf", "IsNaN", "ScatterND", "Gemm", "BatchNormalization",
        "Dropout", "Max", "Min", "Mean", "Sum", "MaxPool", "ArgMax", "ArgMin", "DepthToSpace", "NonZero", "Slice",
        "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
        "ReduceProd", "ReduceSumSquare", "Split", "Pad", "Resize", "AveragePool", "Gelu", "Upsample",
        "GlobalMaxPool", "Mish")},
    "LSTM": "edgewise.onnxin.recurrent:LSTM",
    "GRU": "edgewise.onnxin.recurrent:GRU",
})


def register_op_handler(handler: OpHandler, *, replace: bool = False) -> OpHandler:
    """Add `handler` under its op type (a taken op type is refused unless `replace`); it takes part in the next
    conversion."""
    ONNX_OPS.register(handler.op_type if not handler.domain else f"{handler.domain}:{handler.op_type}", handler,
                      replace=replace)
    _installed.clear()
    return handler


_installed: set[tuple[str, str, int]] = set()  # the (domain, op type, version) keys in place in onnx2torch's registry
_onnx2torch: dict[Any, Converter] = {}  # onnx2torch's registry as it came, before any handler took a place in it
_writers: dict[type, WeightWriter] = {}


def install() -> None:
    """Put every handler's converters into onnx2torch's registry, in place of its own for the same version (the kit's
    handlers delegate to those where they add nothing), and index the write-backs."""
    if _installed:
        return
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription

    if not _onnx2torch:
        _onnx2torch.update(_CONVERTER_REGISTRY)
    for name in ONNX_OPS.names():
        handler = ONNX_OPS.get(name)
        for version, converter in handler.converters.items():
            _CONVERTER_REGISTRY[OperationDescription(domain=handler.domain, operation_type=handler.op_type,
                                                     version=version)] = converter
            _installed.add((handler.domain, handler.op_type, version))
        if handler.layer is not None and handler.write_back is not None:
            _writers[handler.layer] = handler.write_back


def onnx2torch_converter(op_type: str, version: int, domain: str = "") -> Converter:
    """onnx2torch's own converter of `op_type` at `version` (its since-version at or below), also where a handler has
    taken its place: what a handler delegates to."""
    from onnx import defs
    from onnx2torch.node_converters.registry import OperationDescription

    install()
    since = defs.get_schema(op_type, max_inclusive_version=version, domain=domain).since_version
    return _onnx2torch[OperationDescription(domain=domain, operation_type=op_type, version=since)]


def weight_writer(layer: Any) -> WeightWriter | None:
    """The write-back of a layer type some handler made (an OnnxLSTM's W, R and B), or None."""
    install()
    return _writers.get(type(layer))
