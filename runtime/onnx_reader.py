"""Reading a 4-bit MLP back from an ONNX file written by Edgewise's exporter, into quantized-layer records."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import numpy_helper

from edgewise.errors import UserError
from edgewise.records import QuantizedLayer
from export.int4 import initializer_values


def records_from_onnx(path: str | os.PathLike[str]) -> list[QuantizedLayer]:
    """The Linear layers of a 4-bit ONNX MLP, in graph order: DequantizeLinear -> MatMul (-> Add bias).

    Scales must be one value per layer (blocked scales whose entries are all equal are accepted).
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
        if node.op_type != "MatMul":
            continue
        dq = producers.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear":
            raise UserError(f"MatMul {node.name} has float weights", "export the MLP with its quantized records")
        q = initializer_values(inits[dq.input[0]]).astype(np.int16)
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
        zero = initializer_values(inits[dq.input[2]]).astype(np.int16) if len(dq.input) > 2 else np.int16(0)
        if np.unique(scale).size != 1 or np.unique(zero).size != 1:
            raise UserError(f"layer {dq.input[0]} has per-channel scales", "quantize MLPs per layer for the kernel")
        levels = (q - int(np.unique(zero)[0])).T  # back to (outputs, inputs)
        add = next((n for n in graph.node if n.op_type == "Add" and node.output[0] in n.input), None)
        bias = None
        if add is not None:
            other = next(i for i in add.input if i != node.output[0])
            bias = numpy_helper.to_array(inits[other]).astype(np.float32) if other in inits else None
        name = dq.input[0].removesuffix(".weight_q")
        signed = inits[dq.input[0]].data_type == onnx.TensorProto.INT4
        offset = int(np.unique(zero)[0])
        qmin, qmax = (-8, 7) if signed else (-offset, 15 - offset)
        records.append(QuantizedLayer(name, "Linear", levels.astype(np.int8), np.float32(scale.reshape(-1)[0]), 4,
                                      qmin, qmax, bias=bias))
    if not records:
        raise UserError(f"{path} has no 4-bit MatMul layers", "export a quantized MLP (edgewise export --records)")
    return records
