"""ONNX export of float, pruned and quantized models: the dynamo exporter, one file, dynamic batch."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from edgewise.base.atomic import atomic_path
from edgewise.base.device import device_of
from edgewise.base.records import QuantizedLayer
from edgewise.compress.arguments import check_module, check_records, forward
from edgewise.compress.modes import evaluating
from edgewise.export.errors import ExportError
from edgewise.export.int4 import quantize_graph
from edgewise.export.integrity import stamp
from edgewise.export.shared_weights import share_identical_initializers
from edgewise.export.weight_names import name_weights

TORCH_METADATA = "pkg.torch."  # the dynamo exporter's node metadata: stack traces, scopes, class hierarchies
OPSET = 21  # the first opset whose DequantizeLinear takes INT4 initializers and blocked scales


@dataclass
class OnnxFile:
    """An exported model: where it is, its size and opset, and its inputs and outputs."""

    path: Path
    bytes: int
    opset: int
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    quantized_layers: list[str] = field(default_factory=list)
    float_nodes: list[str] = field(default_factory=list)  # W4A8: the nodes that keep float activations
    sensitivity: dict[str, Any] | None = None  # W4A8: what the sensitivity pass measured (Sensitivity.summary)
    folded_batchnorms: list[str] = field(default_factory=list)  # W4A8: normalizations folded into convolutions
    corrected_biases: list[str] = field(default_factory=list)  # W4A8: layers whose int32 bias was corrected


def _io(values: Any) -> list[dict[str, Any]]:
    out = []
    for v in values:
        dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        out.append({"name": v.name, "shape": dims,
                    "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name})
    return out


def export_proto(model: nn.Module, example_input: torch.Tensor, dynamic_batch: bool = True) -> onnx.ModelProto:
    """The model as an ONNX ModelProto via torch's dynamo exporter (opset 21, batch dimension dynamic); a model that
    carries its own ONNX graph (`to_onnx_proto`, as edgewise.onnxin's converted graphs do) is written as that graph
    with its current weights. Either way its weights are named as the records name them (export.weight_names)."""
    check_module(model)
    if callable(getattr(model, "to_onnx_proto", None)):
        return name_weights(model.to_onnx_proto(), model)
    with evaluating(model):  # the caller's model keeps its train mode
        forward(model, example_input.to(device_of(model)))  # an input it cannot take: one line, not the exporter log
        return name_weights(_dynamo_proto(model, example_input, dynamic_batch), model)


def _dynamo_proto(model: nn.Module, example_input: torch.Tensor, dynamic_batch: bool) -> onnx.ModelProto:
    shapes = None
    if dynamic_batch:
        shapes = ({0: torch.export.Dim("batch", min=1, max=65536)},)
        if example_input.shape[0] == 1:  # torch.export specialises a size-1 dimension to a constant
            example_input = example_input.expand(2, *example_input.shape[1:]).contiguous()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (example_input,), None, dynamo=True, external_data=False,
                                        opset_version=OPSET, dynamic_shapes=shapes, verbose=False)
    except Exception as exc:
        raise ExportError(f"torch.onnx cannot export this model: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                          "the model needs operators the exporter supports (no data-dependent control flow)"
                          ) from None
    return program.model_proto


def to_onnx(model: nn.Module, example_input: torch.Tensor, path: str | os.PathLike[str],
            records: dict[str, QuantizedLayer] | None = None, dynamic_batch: bool = True) -> OnnxFile:
    """Export `model` to `path` as one ONNX file; with `records`, its weight layers are stored as 4-bit integers.

    The written file carries the model's (pruned) tensor shapes. The write is atomic; the model is
    checked with the ONNX checker before it replaces anything.
    """
    if records:
        check_records(records, model)
    proto = export_proto(model, example_input, dynamic_batch)
    if records:
        proto = quantize_graph(proto, records)
    return write_proto(proto, path, sorted(records or {}))


def write_proto(proto: onnx.ModelProto, path: str | os.PathLike[str], quantized_layers: list[str]) -> OnnxFile:
    """Check `proto` with the ONNX checker, stamp its checksums, then write it to `path` atomically (nothing is
    replaced when it fails). The exporter's per-node debugging metadata (stack traces naming this machine's files)
    is not shipped, and identical weights are stored once (export.shared_weights)."""
    share_identical_initializers(proto.graph)
    for node in proto.graph.node:
        kept = [p for p in node.metadata_props if not p.key.startswith(TORCH_METADATA)]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    stamp(proto)
    try:
        onnx.checker.check_model(proto, full_check=False)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported graph is not valid ONNX: {str(exc).splitlines()[0]}",
                          "report this with the model's architecture") from None
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))
    file = Path(path)
    return OnnxFile(file, file.stat().st_size, OPSET, _io(proto.graph.input), _io(proto.graph.output),
                    quantized_layers)
