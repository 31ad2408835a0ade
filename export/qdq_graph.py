"""Reading a W4A8 Q/DQ graph: which tensors are 8-bit roundings or int32 biases, which activations the quantizer
dropped, and running a graph for chosen tensors.

ONNX Runtime's QDQ quantizer writes an 8-bit activation as DequantizeLinear(QuantizeLinear(t)),
a bias as DequantizeLinear of an int32 initializer, and drops a ReLU or Clip whose clipping the
Q range does (the producer may then write the dropped node's output name). The sensitivity pass
(w4a8_precision) and bias correction (w4a8_bias) both read the graph through these, and the plain-runtime variant
(plain_runtime) drops what its rewrite left unread.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgewise.board.session import run_samples, session_options

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def producers_of(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """Each tensor's producing node, by name."""
    return {o: n for n in graph.node for o in n.output}


def _read_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name `graph`'s nodes read, those of their subgraphs (If, Loop, Scan bodies) included."""
    read = set()
    for node in graph.node:
        read.update(node.input)
        for attribute in node.attribute:
            for body in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                read |= _read_names(body)
    return read


def drop_unread(graph: onnx.GraphProto) -> None:
    """Remove the Q/DQ nodes nothing reads any more (a DequantizeLinear first, then its QuantizeLinear) and the
    initializers nothing reads, in place."""
    while True:
        read = _read_names(graph) | {o.name for o in graph.output}
        unread = [n for n in graph.node if n.op_type in QDQ_OPS and not any(o in read for o in n.output)]
        if not unread:
            break
        for node in unread:
            graph.node.remove(node)
    kept = [i for i in graph.initializer if i.name in read]
    if len(kept) < len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)


def rounding_of(producers: dict[str, onnx.NodeProto], tensor: str) -> onnx.NodeProto | None:
    """The QuantizeLinear whose DequantizeLinear produces `tensor` (an 8-bit activation), or None for any other
    tensor."""
    dq = producers.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = producers.get(dq.input[0])
    return q if q is not None and q.op_type == "QuantizeLinear" else None


def int32_bias(producers: dict[str, onnx.NodeProto], inits: dict[str, TensorProto], tensor: str
               ) -> tuple[TensorProto, np.ndarray] | None:
    """The int32 initializer `tensor` is dequantized from (a bias in the accumulator's units, input step x weight
    step) and its scale; None for any other tensor."""
    dq = producers.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits or dq.input[1] not in inits:
        return None
    stored = inits[dq.input[0]]
    if stored.data_type != TensorProto.INT32:
        return None
    return stored, numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)


def dropped_activations(source: onnx.ModelProto, placed: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """The ReLU and Clip nodes of the float graph `source` that the quantizer dropped from `placed` (their clipping
    is the Q range of their input), by the tensors they read and wrote."""
    present = {n.name for n in placed.graph.node}
    dropped = [n for n in source.graph.node if n.op_type in ("Relu", "Clip") and n.name not in present]
    return {tensor: n for n in dropped for tensor in (n.input[0], n.output[0])}


def run_graph(proto: onnx.ModelProto, samples: np.ndarray, names: list[str] | None = None) -> list[np.ndarray]:
    """`proto`'s outputs on `samples` (inputs, batch first), or the tensors `names` in their place, in ONNX Runtime
    without graph optimizations."""
    import onnxruntime as ort

    if names is not None:
        probe = onnx.ModelProto()
        probe.CopyFrom(proto)
        del probe.graph.output[:]
        probe.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in names)
        proto = probe
    session = ort.InferenceSession(proto.SerializeToString(), session_options(fast=False),
                                   providers=["CPUExecutionProvider"])
    return run_samples(session, samples)
