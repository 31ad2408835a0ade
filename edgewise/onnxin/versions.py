"""Handlers for the op versions onnx2torch lacks: opsets 18 to 21 as today's exporters write them, the oldest
versions of opset 7 files, and standard ops it has no converter for (Gelu, Mish, GlobalMaxPool, Upsample).

Most newer versions only widen the element types an op takes (Reshape-19 and -21, Identity, Cast, Shape, ...): for
those the handler is the converter of the version before. Where a version changes what the op does or how it gets
its arguments (Reduce*-18 take axes as an input, Split-18 a number of outputs, Pad-18 axes, Resize-18 antialiasing
and axes), the handler converts what torch can compute exactly and refuses the rest with the attribute that differs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult, get_const_value
from torch import nn

from edgewise.onnxin.handlers import Converter, OpHandler, onnx2torch_converter


class UnsupportedNode(Exception):
    """An op whose attributes or inputs ask for what the torch conversion cannot compute exactly; names it."""


def _as(op_type: str, version: int) -> Converter:
    """The converter onnx2torch has for `op_type` at `version`, looked up when a node is converted."""
    def convert(node: Any, graph: Any) -> Any:
        return onnx2torch_converter(op_type, version)(node, graph)
    return convert



def _aliased(op_type: str, versions: dict[int, int]) -> OpHandler:
    """A handler converting each new version of `op_type` as onnx2torch converts the old one it maps to."""
    return OpHandler(op_type, {new: _as(op_type, old) for new, old in versions.items()})


def _mapping(node: Any, inputs: int | None = None) -> OnnxMapping:
    return OnnxMapping(inputs=tuple(node.input_values[:inputs]), outputs=tuple(node.output_values))


def _constant(node: Any, graph: Any, index: int, what: str) -> list[int] | None:
    """The constant integer list at input `index` of `node` (None when that input is absent)."""
    if len(node.input_values) <= index or not node.input_values[index]:
        return None
    try:
        return [int(v) for v in torch.as_tensor(get_const_value(node.input_values[index], graph)).reshape(-1)]
    except KeyError:
        raise UnsupportedNode(f"{node.operation_type} {node.name!r} computes its {what} at run time; only constant "
                              f"{what} convert") from None


ALIASES: dict[str, dict[int, int]] = {
    "Identity": {19: 16, 21: 16}, "Shape": {19: 15, 21: 15}, "Cast": {6: 9, 19: 13, 21: 13},
    "Constant": {1: 9, 19: 13, 21: 13}, "ConstantOfShape": {20: 9, 21: 9}, "Flatten": {1: 9, 21: 13},
    "Transpose": {21: 13}, "Unsqueeze": {21: 13}, "Equal": {19: 13}, "GreaterOrEqual": {16: 12},
    "LessOrEqual": {16: 12}, "IsInf": {20: 10}, "IsNaN": {9: 13, 20: 13}, "ScatterND": {18: 16}, "Gemm": {7: 9},
    "BatchNormalization": {7: 9}, "Dropout": {7: 10}, "Max": {6: 8}, "Min": {6: 8}, "Mean": {6: 8}, "Sum": {6: 8},
    "MaxPool": {1: 8}, "ArgMax": {1: 11}, "ArgMin": {1: 11}, "DepthToSpace": {1: 11}, "NonZero": {9: 13},
    "Slice": {1: 9},
}
"""Per op, its new since-versions and the old one each converts as (the newer versions only widen the types)."""


REDUCES = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
           "ReduceProd", "ReduceSumSquare")
"""The reductions whose version 18 takes its axes as an input (ReduceSum did so from 13, which onnx2torch has)."""


def __getattr__(name: str) -> OpHandler:
    """The handler of an op of ALIASES or REDUCES by its upper-case name (the registry's entries name them so)."""
    op = next((op for op in (*ALIASES, *REDUCES) if op.upper() == name), None)
    if op is None:
        raise AttributeError(name)
    return _aliased(op, ALIASES[op]) if op in ALIASES else _reduce(op)


class OnnxReshapeAllowZero(nn.Module, OnnxToTorchModule):
    """Reshape with allowzero=1 (torch's exporter writes it): a 0 in the shape is a dimension of size 0, as in
    torch.reshape itself."""

    def forward(self, x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        return torch.reshape(x, [int(d) for d in shape.tolist()])


def _reshape(node: Any, graph: Any) -> Any:
    if node.attributes.get("allowzero", 0):
        return OperationConverterResult(torch_module=OnnxReshapeAllowZero(), onnx_mapping=_mapping(node, 2))
    return onnx2torch_converter("Reshape", 13)(node, graph)


RESHAPE = OpHandler("Reshape", {14: _reshape, 19: _reshape, 21: _reshape})


def _reduce_18(node: Any, graph: Any) -> Any:
    """Reduce*-18 and later: the axes come as an optional second input (constant here) instead of an attribute."""
    from onnx2torch.node_converters.reduce import OnnxReduceStaticAxes

    axes = _constant(node, graph, 1, "axes")
    if not axes and node.attributes.get("noop_with_empty_axes", 0):
        return onnx2torch_converter("Identity", 16)(node, graph)
    module = OnnxReduceStaticAxes(node.operation_type, axes or None, node.attributes.get("keepdims", 1))
    return OperationConverterResult(torch_module=module, onnx_mapping=_mapping(node, 1))


def _reduce(op_type: str) -> OpHandler:
    return OpHandler(op_type, {18: _reduce_18, 20: _reduce_18} if op_type in ("ReduceMax", "ReduceMin")
                     else {18: _reduce_18})


class OnnxSplitEven(nn.Module, OnnxToTorchModule):
    """Split-18 by `num_outputs`: chunks of ceil(length / outputs) along `axis`, the last one smaller."""

    def __init__(self, outputs: int, axis: int) -> None:
        super().__init__()
        self.outputs, self.axis = outputs, axis

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.split(x, math.ceil(x.shape[self.axis] / self.outputs), dim=self.axis)


class OnnxSplitCopies(nn.Module, OnnxToTorchModule):
    """A Split whose every output is a tensor of its own (a copy): torch-pruning maps a split's readers to its outputs
    by position, and an output read twice (YOLOv8's C2f blocks) breaks that walk."""

    def __init__(self, split: nn.Module) -> None:
        super().__init__()
        self.split = split

    def forward(self, x: torch.Tensor, sizes: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        parts = self.split(x) if sizes is None else self.split(x, sizes)
        return tuple(part.clone() for part in parts)


def _read_twice(node: Any, graph: Any) -> bool:
    """Whether some output of `node` is read by more than one node."""
    readers = [name for n in graph.nodes.values() for name in n.input_values if name in node.output_values]
    return len(readers) != len(set(readers))


def _split(version: int) -> Converter:
    def convert(node: Any, graph: Any) -> Any:
        if version == 18 and not (len(node.input_values) > 1 and node.input_values[1]):
            module, inputs = OnnxSplitEven(len(node.output_values), node.attributes.get("axis", 0)), 1
        else:
            converted = onnx2torch_converter("Split", min(version, 13))(node, graph)
            module, inputs = converted.torch_module, len(converted.onnx_mapping.inputs)
        if _read_twice(node, graph):
            module = OnnxSplitCopies(module)
        return OperationConverterResult(torch_module=module, onnx_mapping=_mapping(node, inputs))
    return convert


SPLIT = OpHandler("Split", {version: _split(version) for version in (2, 11, 13, 18)})

_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


class OnnxPadAxes(nn.Module, OnnxToTorchModule):
    """Pad-11 and later: ONNX `pads` (begins, then ends) over `axes` (all when None) as torch's F.pad. torch pads in
    reflect, edge and wrap modes only the last one to three axes of a 3-D to 5-D tensor, so those modes move the
    padded axes last and fold the others into one first (TensorFlow's exports pad a (N, T, C) sequence's T)."""

    def __init__(self, mode: str, axes: list[int] | None) -> None:
        super().__init__()
        self.mode, self.axes = mode, axes

    def forward(self, x: torch.Tensor, pads: torch.Tensor, value: torch.Tensor | None = None) -> torch.Tensor:
        axes = [a % x.dim() for a in (self.axes if self.axes is not None else range(x.dim()))]
        given = [int(p) for p in pads.tolist()]
        begin, end = [0] * x.dim(), [0] * x.dim()
        for i, axis in enumerate(axes):
            begin[axis], end[axis] = given[i], given[i + len(axes)]
        padded = [a for a in range(x.dim()) if begin[a] or end[a]]
        if not padded:
            return x
        if self.mode == "constant":
            torch_pads = [p for a in reversed(range(padded[0], x.dim())) for p in (begin[a], end[a])]
            return F.pad(x, torch_pads, value=float(value) if value is not None and value.numel() else 0.0)
        others = [a for a in range(x.dim()) if a not in padded]
        moved = x.permute(*others, *padded)
        folded = moved.reshape(-1, 1, *moved.shape[len(others):])
        out = F.pad(folded, [p for a in reversed(padded) for p in (begin[a], end[a])], mode=self.mode)
        out = out.reshape(*moved.shape[:len(others)], *out.shape[2:])
        return out.permute(*[(others + padded).index(a) for a in range(x.dim())])


def _pad(node: Any, graph: Any) -> Any:
    mode = node.attributes.get("mode", "constant")
    if mode not in _PAD_MODES:
        raise UnsupportedNode(f"Pad {node.name!r} pads in mode {mode!r}, which torch has no padding for")
    axes = _constant(node, graph, 3, "axes")
    return OperationConverterResult(torch_module=OnnxPadAxes(_PAD_MODES[mode], axes), onnx_mapping=_mapping(node, 3))


PAD = OpHandler("Pad", {11: _pad, 13: _pad, 18: _pad, 19: _pad, 21: _pad})


def _resize_18(node: Any, graph: Any) -> Any:
    """Resize-18/19: the version-13 conversion where the new attributes keep their defaults."""
    attributes = node.attributes
    differs = [f"{name}={attributes[name]!r}" for name, default in (
        ("antialias", 0), ("keep_aspect_ratio_policy", "stretch")) if attributes.get(name, default) != default]
    if "axes" in attributes:
        differs.append(f"axes={list(attributes['axes'])}")
    if attributes.get("coordinate_transformation_mode") == "half_pixel_symmetric":
        differs.append("coordinate_transformation_mode='half_pixel_symmetric'")
    if differs:
        raise UnsupportedNode(f"Resize {node.name!r} asks for {', '.join(differs)}, which torch's interpolate does "
                              "not compute")
    return onnx2torch_converter("Resize", 13)(node, graph)


RESIZE = OpHandler("Resize", {18: _resize_18, 19: _resize_18})


def _average_pool_19(node: Any, graph: Any) -> Any:
    dilations = list(node.attributes.get("dilations", []))
    if any(d != 1 for d in dilations):
        raise UnsupportedNode(f"AveragePool {node.name!r} is dilated ({dilations}); torch's avg_pool is not")
    return onnx2torch_converter("AveragePool", 11)(node, graph)


AVERAGEPOOL = OpHandler("AveragePool", {19: _average_pool_19})


def _module(layer: nn.Module) -> Converter:
    """A converter to a fresh copy of a parameter-free torch `layer`, for one-input ops."""
    import copy

    def convert(node: Any, graph: Any) -> Any:
        return OperationConverterResult(torch_module=copy.deepcopy(layer), onnx_mapping=_mapping(node, 1))
    return convert


def _gelu(node: Any, graph: Any) -> Any:
    approximate = node.attributes.get("approximate", "none")
    return _module(nn.GELU(approximate=approximate))(node, graph)


GELU = OpHandler("Gelu", {20: _gelu})
MISH = OpHandler("Mish", {18: _module(nn.Mish())})


class OnnxGlobalMaxPool(nn.Module, OnnxToTorchModule):
    """GlobalMaxPool: the largest value of each channel over every spatial axis, the axes kept."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


GLOBALMAXPOOL = OpHandler("GlobalMaxPool", {1: _module(OnnxGlobalMaxPool())})


class OnnxUpsample(nn.Module, OnnxToTorchModule):
    """Upsample-7/9 (Resize's predecessor) in nearest mode: the spatial axes scaled by `scales`."""

    def __init__(self, scales: list[float] | None = None) -> None:
        super().__init__()
        self.scales = scales

    def forward(self, x: torch.Tensor, scales: torch.Tensor | None = None) -> torch.Tensor:
        factors = [float(s) for s in (scales.tolist() if scales is not None else self.scales)]
        if factors[:2] != [1.0, 1.0]:
            raise UnsupportedNode("Upsample scales the batch or channel axis, which interpolation cannot")
        return F.interpolate(x, scale_factor=factors[2:], mode="nearest")


def _upsample(node: Any, graph: Any) -> Any:
    mode = node.attributes.get("mode", "nearest")
    if mode != "nearest":  # ONNX's linear Upsample maps coordinates asymmetrically, which no torch mode does
        raise UnsupportedNode(f"Upsample {node.name!r} interpolates in mode {mode!r}; only nearest converts exactly")
    scales = node.attributes.get("scales")
    module = OnnxUpsample(list(scales) if scales is not None else None)
    return OperationConverterResult(torch_module=module, onnx_mapping=_mapping(node, 1 if scales is not None else 2))


UPSAMPLE = OpHandler("Upsample", {7: _upsample, 9: _upsample})
