"""Reading an MLP back from an ONNX file into quantized-layer records: 4-bit weights as written, float ones rounded.

The records feed the FantastIC4 integer kernel (edgewise.runtime), which knows nothing of ONNX.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import numpy_helper

from edgewise.base.errors import UserError
from edgewise.base.grid import MULTIPLIER_MAX, symmetric_levels
from edgewise.base.records import QuantizedLayer


def rounded_layer(name: str, weight: np.ndarray, bias: np.ndarray | None) -> QuantizedLayer:
    """A float Linear layer (weight as (outputs, inputs)) as a 4-bit record by per-layer symmetric rounding (levels
    within +-7, max |w| -> 7), no retraining; stored on the signed 4-bit grid [-8, 7]."""
    levels, step, _, _ = symmetric_levels(weight, 4)
    return QuantizedLayer(name, "Linear", levels, step, 4, -8, 7, bias=bias, method="round-float",
                          meta={"from": "float weights, rounded per layer"})


def _bias(graph: onnx.GraphProto, inits: dict[str, onnx.TensorProto], output: str) -> np.ndarray | None:
    add = next((n for n in graph.node if n.op_type == "Add" and output in n.input), None)
    if add is None:
        return None
    other = next(i for i in add.input if i != output)
    return numpy_helper.to_array(inits[other]).astype(np.float32) if other in inits else None


def _float_layer(node: onnx.NodeProto, graph: onnx.GraphProto, inits: dict[str, onnx.TensorProto],
                 round_float_weights: bool) -> QuantizedLayer:
    """A MatMul or Gemm with float weights, rounded to 4 bits when asked (else a clear refusal)."""
    if not round_float_weights:
        raise UserError(f"{node.op_type} {node.name or node.output[0]} has float weights, and the kernel computes "
                        "with 4-bit levels", "export the MLP with its quantized records, or set emulate: "
                        "{round_float_weights: true} to round them (per layer, no retraining)")
    weight = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Gemm" and attrs.get("transA", 0):
        raise UserError(f"Gemm {node.name} transposes its input", "export the model with plain Linear layers")
    if node.op_type == "MatMul" or not attrs.get("transB", 0):
        weight = weight.T  # to (outputs, inputs)
    bias = None
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2] in inits:
        bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32) * np.float32(attrs.get("beta", 1.0))
        weight = weight * np.float32(attrs.get("alpha", 1.0))
    elif node.op_type == "MatMul":
        bias = _bias(graph, inits, node.output[0])
    return rounded_layer(node.input[1], weight, bias)


def _record(name: str, levels: np.ndarray, scales: np.ndarray, block: int, qmin: int, qmax: int,
            bias: np.ndarray | None) -> QuantizedLayer:
    """The record of a 4-bit MatMul weight from its scales (outputs, blocks): per layer, per output, or blocks whose
    scales are integer multiples of their output's base (the base is the largest |scale| / 255, as Edgewise
    writes)."""
    if np.unique(scales).size == 1:
        return QuantizedLayer(name, "Linear", levels, np.float32(scales.reshape(-1)[0]), 4, qmin, qmax, bias=bias)
    if scales.shape[1] == 1 or np.all(scales == scales[:, :1]):
        return QuantizedLayer(name, "Linear", levels, scales[:, 0].copy(), 4, qmin, qmax, axis=0, bias=bias)
    base = (np.abs(scales).max(axis=1) / np.float32(MULTIPLIER_MAX)).astype(np.float32)
    multipliers = np.rint(scales / base[:, None])
    exact = (np.abs(multipliers) >= 1).all() and (np.abs(multipliers) <= MULTIPLIER_MAX).all() and np.array_equal(
        (base[:, None] * multipliers.astype(np.float32)).astype(np.float32), scales)
    if not exact:
        raise UserError(f"layer {name} has block scales that are not integer multiples of one base per output",
                        "quantize and export the model with Edgewise (uniform, block) for the integer kernel")
    return QuantizedLayer(name, "Linear", levels, base, 4, qmin, qmax, axis=0, bias=bias, block=block,
                          multipliers=multipliers.astype(np.int16))


def records_from_onnx(path: str | os.PathLike[str], round_float_weights: bool = False) -> list[QuantizedLayer]:
    """The Linear layers of a 4-bit ONNX MLP, in graph order: DequantizeLinear -> MatMul (-> Add bias).

    Scales are one value per layer, one per output, or per block of K (a blocked DequantizeLinear)
    where each block's scale is a signed integer (1 to 255 in magnitude) times its output's base, as
    Edgewise writes them.
    MatMul or Gemm layers with float weights (a model exported elsewhere) are refused, or with
    `round_float_weights` rounded to a symmetric 4-bit grid per layer: an honest what-if for the
    accelerator, without the retraining ECQ would do.
    """
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise UserError(f"cannot read ONNX file {path}: {exc}", "give an ONNX file written by `edgewise export`"
                        ) from None
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    records = []
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        dq = producers.get(node.input[1])
        if node.input[1] in inits:
            records.append(_float_layer(node, graph, inits, round_float_weights))
            continue
        if dq is None or dq.op_type != "DequantizeLinear" or node.op_type != "MatMul":
            raise UserError(f"{node.op_type} {node.name} computes its weights at run time",
                            "the kernel reads MLPs whose weights are initializers (float or 4-bit)")
        q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.int16)
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
        zero = numpy_helper.to_array(inits[dq.input[2]]).astype(np.int16) if len(dq.input) > 2 else np.int16(0)
        if np.unique(zero).size != 1:
            raise UserError(f"layer {dq.input[0]} has a zero point per channel",
                            "the kernel reads one zero point per layer (export with Edgewise)")
        levels = (q - int(np.unique(zero)[0])).T  # back to (outputs, inputs)
        bias = _bias(graph, inits, node.output[0])
        name = dq.input[0].removesuffix(".weight_q")
        signed = inits[dq.input[0]].data_type == onnx.TensorProto.INT4
        offset = int(np.unique(zero)[0])
        qmin, qmax = (-8, 7) if signed else (-offset, 15 - offset)
        block = next((a.i for a in dq.attribute if a.name == "block_size"), 0)
        outputs = levels.shape[0]
        scales = np.full((outputs, 1), scale.reshape(-1)[0]) if scale.size == 1 else scale.reshape(-1, outputs).T
        records.append(_record(name, levels.astype(np.int8), scales.astype(np.float32), block, qmin, qmax, bias))
    if not records:
        raise UserError(f"{path} has no MatMul or Gemm layers", "the kernel runs fully-connected networks (MLPs)")
    return records
