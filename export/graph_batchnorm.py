"""BatchNormalization folded into the convolution before it, in an ONNX graph whose weights may be 4-bit records:
a quantized convolution keeps its levels and each output channel's step takes the normalization's scale.

A graph converted from another framework keeps its BatchNormalization nodes (the write-back into
the source graph keeps its structure), and an 8-bit activation grid between a convolution and its
normalization rounds the same signal twice. Folded, the W4A8 file rounds once, as ONNX Runtime's
own quantizer does after its pre-processing.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgewise.base.records import QuantizedLayer


def _attribute(node: onnx.NodeProto, name: str, default: float) -> float:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _folded_record(record: QuantizedLayer, scale: np.ndarray) -> QuantizedLayer | None:
    """The record of a convolution whose output channels are multiplied by `scale`: the same levels (negated where
    the scale is), each channel's step times |scale|; None where that cannot be stored (blocks, or a negated level
    outside the grid)."""
    if record.block is not None or record.axis not in (None, 0):
        return None
    sign = np.where(scale < 0, -1, 1).astype(np.int16).reshape(-1, *[1] * (record.levels.ndim - 1))
    levels = record.levels.astype(np.int16) * sign
    if levels.min() < record.qmin or levels.max() > record.qmax:
        return None
    step = np.broadcast_to(record.step.reshape(-1), scale.shape).astype(np.float32) * np.abs(scale).astype(np.float32)
    return dataclasses.replace(record, levels=levels.astype(np.int8), step=step, axis=0)


def fold_graph_batchnorm(proto: onnx.ModelProto, records: dict[str, QuantizedLayer]
                         ) -> tuple[onnx.ModelProto, dict[str, QuantizedLayer], list[str]]:
    """A copy of `proto` with every inference BatchNormalization that alone reads a Conv's output folded into that
    Conv, the records updated to match (levels x steps stay the stored weights exactly), and the folded nodes'
    names. A normalization whose fold a record cannot take stays."""
    folded = onnx.ModelProto()
    folded.CopyFrom(proto)
    graph = folded.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    outputs = {o.name for o in graph.output}
    by_weight = {record.weight_key: name for name, record in records.items()}
    records = dict(records)
    done: list[str] = []
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization"]:
        conv = producers.get(bn.input[0])
        if (conv is None or conv.op_type != "Conv" or len(bn.output) != 1 or _attribute(bn, "training_mode", 0)
                or readers.get(bn.input[0], 0) != 1 or bn.input[0] in outputs or conv.input[1] not in inits
                or not all(name in inits for name in bn.input[1:5])
                or (len(conv.input) > 2 and conv.input[2] and conv.input[2] not in inits)):
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[name]).astype(np.float64) for name in bn.input[1:5])
        scale = gamma / np.sqrt(var + _attribute(bn, "epsilon", 1e-5))
        weight = inits[conv.input[1]]
        layer = by_weight.get(conv.input[1])
        if layer is not None:
            record = _folded_record(records[layer], scale)
            if record is None:
                continue
            records[layer] = record
            new_weight = record.dequantize()
        else:
            array = numpy_helper.to_array(weight)
            new_weight = (array * scale.reshape(-1, *[1] * (array.ndim - 1))).astype(array.dtype)
        bias = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 and \
            conv.input[2] else np.zeros_like(scale)
        new_bias = (bias * scale + beta - mean * scale).astype(np.float32)
        weight.CopyFrom(numpy_helper.from_array(new_weight, weight.name))
        bias_name = f"{conv.input[1].removesuffix('.weight')}.folded_bias"
        graph.initializer.append(numpy_helper.from_array(new_bias, bias_name))
        if len(conv.input) > 2:
            conv.input[2] = bias_name
        else:
            conv.input.append(bias_name)
        conv.output[0] = bn.output[0]
        graph.node.remove(bn)
        done.append(bn.name)
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return folded, records, done
