"""MACs and weight bytes of an ONNX file, for estimates of models given only as files (batch 1)."""

from __future__ import annotations

import math
import os
from typing import Any

import onnx
from onnx import shape_inference


def _static(model: onnx.ModelProto) -> onnx.ModelProto:
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param or dim.dim_value <= 0:
                dim.ClearField("dim_param")
                dim.dim_value = 1
    return model


def onnx_stats(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Multiply-accumulates per sample (Conv, Gemm, MatMul) and initializer bytes of an ONNX model."""
    model = _static(onnx.load(str(path)))
    inferred = shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        shapes[value.name] = [d.dim_value for d in value.type.tensor_type.shape.dim]
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    macs = 0
    for node in inferred.graph.node:
        out = shapes.get(node.output[0])
        if node.op_type == "Conv" and out:
            weight = shapes.get(node.input[1], [])
            macs += math.prod(out) * math.prod(weight[1:])  # out elements x (in/groups x kh x kw)
        elif node.op_type in ("Gemm", "MatMul") and out:
            a = shapes.get(node.input[0], [])
            if a:
                macs += math.prod(out) * a[-1]
    weight_bytes = sum(len(i.raw_data) if i.raw_data else onnx.numpy_helper.to_array(i).nbytes
                       for i in model.graph.initializer)
    return {"macs": macs, "weight_bytes": weight_bytes}
