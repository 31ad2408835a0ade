"""Reading a network back from an ONNX file into quantized-layer records: 4-bit weights as written, float ones
rounded, convolutions with their windows.

The records feed the FantastIC4 integer kernel (edgewise.runtime), which knows nothing of ONNX.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import numpy_helper

from edgewise.base.grid import MULTIPLIER_MAX, symmetric_levels
from edgewise.base.records import QuantizedLayer
from edgewise.board.errors import UserError
from edgewise.board.session import node_consumers
from edgewise.export.integrity import check_weights
from edgewise.export.onnx_file import read_onnx


def rounded_layer(name: str, weight: np.ndarray, bias: np.ndarray | None, kind: str = "Linear") -> QuantizedLayer:
    """A float layer (weight as (outputs, inputs, ...)) as a 4-bit record by per-layer symmetric rounding (levels
    within +-7, max |w| -> 7), no retraining; stored on the signed 4-bit grid [-8, 7]."""
    levels, step, _, _ = symmetric_levels(weight, 4)
    return QuantizedLayer(name, kind, levels, step, 4, -8, 7, bias=bias, method="round-float",
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
    return rounded_layer(node.input[1].removesuffix(".weight"), weight, bias)


def _record(name: str, levels: np.ndarray, scales: np.ndarray, block: int, qmin: int, qmax: int,
            bias: np.ndarray | None, bits: int = 4) -> QuantizedLayer:
    """The record of a 4-bit MatMul weight from its scales (outputs, blocks): per layer, per output, or blocks whose
    scales are integer multiples of their output's base (the base is the largest |scale| / 255, as Edgewise
    writes)."""
    if np.unique(scales).size == 1:
        return QuantizedLayer(name, "Linear", levels, np.float32(scales.reshape(-1)[0]), bits, qmin, qmax, bias=bias)
    if scales.shape[1] == 1 or np.all(scales == scales[:, :1]):
        return QuantizedLayer(name, "Linear", levels, scales[:, 0].copy(), bits, qmin, qmax, axis=0, bias=bias)
    base = (np.abs(scales).max(axis=1) / np.float32(MULTIPLIER_MAX)).astype(np.float32)
    multipliers = np.rint(scales / base[:, None])
    exact = (np.abs(multipliers) >= 1).all() and (np.abs(multipliers) <= MULTIPLIER_MAX).all() and np.array_equal(
        (base[:, None] * multipliers.astype(np.float32)).astype(np.float32), scales)
    if not exact:
        raise UserError(f"layer {name} has block scales that are not integer multiples of one base per output",
                        "quantize and export the model with Edgewise (uniform, block) for the integer kernel")
    return QuantizedLayer(name, "Linear", levels, base, bits, qmin, qmax, axis=0, bias=bias, block=block,
                          multipliers=multipliers.astype(np.int16))


def _array(inits: dict[str, onnx.TensorProto], name: str) -> np.ndarray:
    return numpy_helper.to_array(inits[name])


def _dequantized_bias(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto],
                      inits: dict[str, onnx.TensorProto]) -> np.ndarray | None:
    """A Gemm's bias: a float initializer, or int32 levels times their scale (W4A8), as float32."""
    if len(node.input) < 3 or not node.input[2]:
        return None
    if node.input[2] in inits:
        return _array(inits, node.input[2]).astype(np.float32)
    dq = producers.get(node.input[2])
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
        raise UserError(f"Gemm {node.name} computes its bias at run time", "export the MLP with Edgewise")
    return (_array(inits, dq.input[0]).astype(np.float32) * _array(inits, dq.input[1]).astype(np.float32))


def _input_quantization(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto],
                        inits: dict[str, onnx.TensorProto]) -> dict[str, object]:
    """A W4A8 layer's activation scale (its input's DequantizeLinear) for the record's meta; {} for float inputs."""
    dq = producers.get(node.input[0])
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in inits:
        return {}
    zero_name = dq.input[2] if len(dq.input) > 2 else ""
    zero = inits.get(zero_name)
    signed = zero is None or zero.data_type == onnx.TensorProto.INT8 or int(_array(inits, zero_name)) != 0
    return {"input_scale": float(_array(inits, dq.input[1]).reshape(-1)[0]), "input_signed": signed}


def _levels(dq: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> tuple[np.ndarray, int, int, int]:
    """The integer levels a weight DequantizeLinear holds (its zero point removed), their bit width and range."""
    stored = inits[dq.input[0]]
    q = numpy_helper.to_array(stored).astype(np.int16)
    zero = _array(inits, dq.input[2]).astype(np.int16) if len(dq.input) > 2 and dq.input[2] else np.int16(0)
    if np.unique(zero).size != 1:
        raise UserError(f"layer {dq.input[0]} has a zero point per channel",
                        "the kernel reads one zero point per layer (export with Edgewise)")
    offset = int(np.unique(zero)[0])
    if stored.data_type == onnx.TensorProto.INT4:
        return q, 4, -8, 7
    if stored.data_type == onnx.TensorProto.UINT4:
        return q - offset, 4, -offset, 15 - offset
    if stored.data_type == onnx.TensorProto.INT8:
        return q - offset, 8, -128 - offset, 127 - offset
    raise UserError(f"weight {dq.input[0]} is stored as ONNX type {stored.data_type}",
                    "the kernel reads 4-bit (INT4, UINT4) or int8 weights")


def _gemm_layer(node: onnx.NodeProto, dq: onnx.NodeProto, producers: dict[str, onnx.NodeProto],
                inits: dict[str, onnx.TensorProto]) -> QuantizedLayer:
    """A Gemm whose weight is dequantized per layer or per output (a W4A8 file's linear layers)."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        raise UserError(f"Gemm {node.name} has transA/alpha/beta set", "export plain nn.Linear layers")
    levels, bits, qmin, qmax = _levels(dq, inits)
    if not attrs.get("transB", 0):
        levels = levels.T  # to (outputs, inputs)
    scale = _array(inits, dq.input[1]).astype(np.float32).reshape(-1)
    name = dq.input[0].removesuffix("_quantized").removesuffix(".weight")
    step, axis = (np.float32(scale[0]), None) if np.unique(scale).size == 1 else (scale, 0)
    return QuantizedLayer(name, "Linear", levels.astype(np.int8), step, bits, qmin, qmax, axis=axis,
                          bias=_dequantized_bias(node, producers, inits), method="onnx",
                          meta=_input_quantization(node, producers, inits))


def _attributes(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _window(node: onnx.NodeProto, kernel: tuple[int, ...]) -> dict[str, list[int]]:
    """A Conv's or MaxPool's 2-D window from its attributes (explicit pads only), as record metadata holds it (the
    runtime's Window.from_json reads it)."""
    attrs = _attributes(node)
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or attrs.get("ceil_mode", 0):
        raise UserError(f"{node.op_type} {node.name} pads automatically or rounds its output size up",
                        "export with explicit padding (torch's padding=..., ceil_mode=False)")
    return {"kernel": list(attrs.get("kernel_shape", kernel)), "strides": list(attrs.get("strides", (1, 1))),
            "pads": list(attrs.get("pads", (0, 0, 0, 0))), "dilations": list(attrs.get("dilations", (1, 1)))}


def _conv_layer(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto], inits: dict[str, onnx.TensorProto],
                round_float_weights: bool) -> QuantizedLayer:
    """A Conv with 4-bit (or int8) weights, per layer or per output channel, as a record carrying its window."""
    attrs = _attributes(node)
    if attrs.get("group", 1) != 1:
        raise UserError(f"convolution {node.name} is grouped (groups={attrs['group']})",
                        "the kernel maps one weight matrix per layer: emulate a network without grouped convolutions")
    if node.input[1] in inits:
        if not round_float_weights:
            raise UserError(f"Conv {node.name or node.output[0]} has float weights, and the kernel computes with "
                            "4-bit levels", "export the model with its quantized records, or set emulate: "
                            "{round_float_weights: true} to round them (per layer, no retraining)")
        weight = _array(inits, node.input[1]).astype(np.float32)
        record = rounded_layer(node.input[1].removesuffix(".weight"), weight, None, kind="Conv2d")
    else:
        dq = producers.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
            raise UserError(f"Conv {node.name} computes its weights at run time",
                            "the kernel reads weights that are initializers (float or 4-bit)")
        if any(a.name == "block_size" and a.i for a in dq.attribute):
            raise UserError(f"convolution {node.name} has block-wise weight scales",
                            "quantize convolutions per layer or per channel to emulate them")
        levels, bits, qmin, qmax = _levels(dq, inits)
        scale = _array(inits, dq.input[1]).astype(np.float32).reshape(-1)
        step, axis = (np.float32(scale[0]), None) if np.unique(scale).size == 1 else (scale, 0)
        name = dq.input[0].removesuffix("_quantized").removesuffix("_q").removesuffix(".weight")
        record = QuantizedLayer(name, "Conv2d", levels.astype(np.int8), step, bits, qmin, qmax, axis=axis,
                                method="onnx")
    if len(record.levels.shape) != 4:
        raise UserError(f"Conv {node.name} is not 2-D (weight {record.levels.shape})", "the kernel runs 2-D "
                        "convolutions")
    record.bias = _dequantized_bias(node, producers, inits)
    record.meta.update(_input_quantization(node, producers, inits))
    record.meta["conv"] = _window(node, record.levels.shape[2:])
    return record


def _dense_layer(node: onnx.NodeProto, graph: onnx.GraphProto, producers: dict[str, onnx.NodeProto],
                 inits: dict[str, onnx.TensorProto], round_float_weights: bool) -> QuantizedLayer:
    """A MatMul (4-bit weights, blocked or not; its bias the Add after it) or a Gemm (float or W4A8) as a record."""
    if node.input[1] in inits:
        return _float_layer(node, graph, inits, round_float_weights)
    dq = producers.get(node.input[1])
    if node.op_type == "Gemm" and dq is not None and dq.op_type == "DequantizeLinear":
        return _gemm_layer(node, dq, producers, inits)
    if dq is None or dq.op_type != "DequantizeLinear" or node.op_type != "MatMul":
        raise UserError(f"{node.op_type} {node.name} computes its weights at run time",
                        "the kernel reads MLPs whose weights are initializers (float or 4-bit)")
    levels, bits, qmin, qmax = _levels(dq, inits)
    levels = levels.T  # back to (outputs, inputs)
    scale = _array(inits, dq.input[1]).astype(np.float32)
    bias = _bias(graph, inits, node.output[0])
    name = dq.input[0].removesuffix(".weight_q")
    block = next((a.i for a in dq.attribute if a.name == "block_size"), 0)
    outputs = levels.shape[0]
    scales = np.full((outputs, 1), scale.reshape(-1)[0]) if scale.size == 1 else scale.reshape(-1, outputs).T
    record = _record(name, levels.astype(np.int8), scales.astype(np.float32), block, qmin, qmax, bias, bits)
    record.meta.update(_input_quantization(node, producers, inits))
    return record


# operations on the chain that move or re-encode activations without computing: the kernel's flattening between a
# convolution and a linear layer, and a W4A8 file's activation Q/DQ pairs
PASSING = ("Reshape", "Flatten", "Identity", "QuantizeLinear", "DequantizeLinear")
LAYERS = ("MatMul", "Gemm", "Conv")
MAPPABLE = "a chain of convolutions and linear layers with ReLU, max pooling and flattening between them"


def _rectifies(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    """A QuantizeLinear to uint8 with zero point 0: it clips negatives as ReLU would (ONNX Runtime's QDQ quantizer
    drops the ReLU before it)."""
    if node.op_type == "Relu":
        return True
    if node.op_type != "QuantizeLinear" or len(node.input) < 3 or node.input[2] not in inits:
        return False
    zero = inits[node.input[2]]
    return zero.data_type == onnx.TensorProto.UINT8 and not numpy_helper.to_array(zero).any()


def records_from_onnx(path: str | os.PathLike[str], round_float_weights: bool = False) -> list[QuantizedLayer]:
    """The layers of an ONNX network the integer kernel runs, in order, read by walking the chain from its input:
    linear layers (4-bit DequantizeLinear -> MatMul (-> Add bias), or a W4A8 file's DequantizeLinear -> Gemm) and 2-D
    convolutions (their windows in meta conv), with ReLU after every layer but the last, max pooling (meta
    max_pool) and flattening. Records of a W4A8 file carry its activation scales (meta input_scale).

    Scales are one value per layer, one per output, or per block of K (a blocked DequantizeLinear)
    where each block's scale is a signed integer (1 to 255 in magnitude) times its output's base, as
    Edgewise writes them. Layers with float weights (a model exported elsewhere) are refused, or
    with `round_float_weights` rounded to a symmetric 4-bit grid per layer: an honest what-if for
    the accelerator, without the retraining ECQ would do. A node the kernel cannot map (a branch,
    an activation other than ReLU, average pooling) is a UserError naming it.
    """
    model = read_onnx(path)
    check_weights(model, path)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    consumers = node_consumers(graph)
    first = next((i for i in graph.input if i.name not in inits), None)
    if first is None:
        raise UserError(f"{path} has no input", "give a model file with an input")
    outputs = {o.name for o in graph.output}
    records: list[QuantizedLayer] = []
    rectified: list[bool] = []
    tensor = first.name
    while True:
        users = consumers.get(tensor, [])
        if not users:
            break
        if len(users) > 1 or tensor in outputs:
            raise UserError(f"tensor {tensor} of {path} feeds {len(users)} nodes ({', '.join(u.op_type for u in users)}"
                            "): the network branches (a residual add, a concatenation, a second output)",
                            f"the integer kernel runs {MAPPABLE}")
        node = users[0]
        tensor = node.output[0]
        if node.op_type in LAYERS:
            if records and not rectified[-1]:
                raise UserError(f"layer {records[-1].name} is not followed by ReLU", f"the kernel runs {MAPPABLE}")
            conv = node.op_type == "Conv"
            records.append(_conv_layer(node, producers, inits, round_float_weights) if conv else
                           _dense_layer(node, graph, producers, inits, round_float_weights))
            rectified.append(False)
            bias_add = consumers.get(tensor, [])
            if node.op_type == "MatMul" and len(bias_add) == 1 and bias_add[0].op_type == "Add":
                tensor = bias_add[0].output[0]  # the bias, which _dense_layer read
        elif records and _rectifies(node, inits) and not rectified[-1]:
            rectified[-1] = True
        elif node.op_type == "MaxPool" and records and rectified[-1] and "max_pool" not in records[-1].meta:
            records[-1].meta["max_pool"] = _window(node, (1, 1))
        elif node.op_type not in PASSING and not (node.op_type == "Relu" and records and rectified[-1]):
            raise UserError(f"node {node.name or tensor} ({node.op_type}) of {path} cannot be mapped onto the integer "
                            "kernel", f"the kernel runs {MAPPABLE}")
    if not records:
        raise UserError(f"{path} has no convolution, MatMul or Gemm layer", f"the integer kernel runs {MAPPABLE}")
    if rectified[-1]:
        raise UserError(f"the last layer {records[-1].name} is followed by ReLU", "the kernel's last layer gives "
                        "logits: export the model without a final ReLU")
    dims = [d.dim_value for d in first.type.tensor_type.shape.dim[1:]]
    if dims and all(dims):
        records[0].meta["input_shape"] = dims
    return records
