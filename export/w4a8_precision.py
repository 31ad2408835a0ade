"""Which nodes of a W4A8 graph keep float activations: the sensitivity pass that finds where 8-bit activations
break the network.

The error measured is what 8-bit activations add: the W4A8 graph's outputs against the float
graph's (the same 4-bit weights, float activations and biases), relative L2 over all float
outputs on a few calibration inputs; a node kept float reads its inputs and its bias in float.
When the whole graph stays within the tolerance nothing is kept float. Otherwise each node that
reads quantized activations is measured alone (only its inputs rounded to 8 bits, AIMET's
per-layer analysis), and nodes are kept float in order of their own damage, in growing steps,
until the graph is within the tolerance; the smallest such count is then found by bisection. At
most a tenth of the nodes stay float: where that is not enough, the measured count that left the
least error is kept and the result says the tolerance was out of reach. Every measurement is one
ONNX Runtime session of an edited copy of the graph, so no quantizer runs in the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from edgewise.export.qdq_graph import (
    QDQ_OPS,
    drop_unread,
    dropped_activations,
    int32_bias,
    producers_of,
    rounding_of,
    run_graph,
)

ACTIVATION_TOLERANCE = 0.05
"""The relative output error 8-bit activations may add before nodes are kept float."""
MAX_FLOAT_SHARE = 0.1
"""The largest share of the nodes reading 8-bit activations the pass keeps float."""
SENSITIVITY_SAMPLES = 8


@dataclass
class Sensitivity:
    """The pass's outcome: the error of the whole W4A8 graph, the nodes kept float and the error left with them
    float, each measured node's own error (largest first) and the sessions it took."""

    error: float
    kept_float: list[str] = field(default_factory=list)
    error_kept: float | None = None
    node_errors: list[tuple[str, str, float]] = field(default_factory=list)  # (node, op type, error alone)
    sessions: int = 0
    within_tolerance: bool = True  # False: MAX_FLOAT_SHARE of the nodes float did not bring the error down to it

    def summary(self) -> dict[str, object]:
        """The figures a report prints: errors, the nodes kept float with their op types, and the five worst."""
        ops = {name: op for name, op, _ in self.node_errors}
        return {"activation_error": self.error, "activation_error_kept": self.error_kept,
                "float_nodes": [f"{name} ({ops.get(name, '?')})" for name in self.kept_float],
                "worst_nodes": [{"node": n, "op": op, "error": e} for n, op, e in self.node_errors[:5]],
                "sessions": self.sessions, "within_tolerance": self.within_tolerance}


def quantized_readers(proto: onnx.ModelProto) -> dict[str, str]:
    """The nodes (name -> op type) that read an 8-bit activation: an input produced by a DequantizeLinear of a
    QuantizeLinear (weights are DequantizeLinear of an initializer and do not count)."""
    producers = producers_of(proto.graph)
    readers = {}
    for node in proto.graph.node:
        if node.op_type not in QDQ_OPS and any(rounding_of(producers, i) is not None for i in node.input):
            readers[node.name] = node.op_type
    return readers


def _unrounded(graph: onnx.GraphProto, q: onnx.NodeProto, removed: dict[str, onnx.NodeProto],
               source_inits: dict[str, onnx.TensorProto]) -> tuple[str, list[onnx.NodeProto]]:
    """The float tensor a QuantizeLinear `q` rounds, and the nodes that make it: none, or the ReLU or Clip the
    quantizer dropped because the grid's range did its clipping (restored with its bounds)."""
    activation = removed.get(q.input[0])
    if activation is None:
        return q.input[0], []
    name = f"{q.input[0]}_unrounded"
    restored = onnx.NodeProto()
    restored.CopyFrom(activation)  # its bounds, as inputs or (before opset 11) attributes
    restored.input[0], restored.output[0], restored.name = q.input[0], name, name
    present = {i.name for i in graph.initializer}
    graph.initializer.extend(source_inits[i] for i in activation.input[1:] if i and i in source_inits
                             and i not in present)
    return name, [restored]


def only_quantized(proto: onnx.ModelProto, source: onnx.ModelProto, nodes: set[str] | None = None,
                   floated: set[str] = frozenset()) -> onnx.ModelProto:
    """A copy of the Q/DQ graph `proto` (quantized from the float graph `source`) in which each node reads its
    activations and its bias in float instead of their integer rounding, except the nodes of `nodes` (all when None)
    that are not in `floated`. Where the quantizer dropped a ReLU or Clip into a Q range, the float tensor gets it
    back; the 4-bit weights stay."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    graph = copy.graph
    producers, inits = producers_of(graph), {i.name: i for i in graph.initializer}
    removed = dropped_activations(source, proto)
    source_inits = {i.name: i for i in source.graph.initializer}
    unrounded: dict[str, str] = {}
    for node in list(graph.node):
        if node.op_type in QDQ_OPS or (node.name not in floated and (nodes is None or node.name in nodes)):
            continue
        for k, tensor in enumerate(node.input):
            q = rounding_of(producers, tensor)
            if q is not None:
                if q.name not in unrounded:
                    unrounded[q.name], made = _unrounded(graph, q, removed, source_inits)
                    for extra in made:
                        graph.node.insert(list(graph.node).index(q), extra)
                node.input[k] = unrounded[q.name]
            elif int32_bias(producers, inits, tensor) is not None and tensor in source_inits:  # the bias in float
                name = f"{tensor}_float"
                if name not in inits:
                    inits[name] = numpy_helper.from_array(numpy_helper.to_array(source_inits[tensor]), name)
                    graph.initializer.append(inits[name])
                node.input[k] = name
    drop_unread(graph)
    return copy


class _Measure:
    """The relative output error of an edited graph against the float graph's, on fixed inputs."""

    def __init__(self, source: onnx.ModelProto, samples: np.ndarray) -> None:
        self.samples, self.sessions = samples, 0
        self.reference = self._outputs(source)

    def _outputs(self, proto: onnx.ModelProto) -> np.ndarray:
        self.sessions += 1
        return np.concatenate([o.reshape(-1).astype(np.float64) for o in run_graph(proto, self.samples)
                               if isinstance(o, np.ndarray) and o.dtype.kind == "f"])

    def error(self, proto: onnx.ModelProto) -> float:
        got = self._outputs(proto)
        norm = float(np.linalg.norm(self.reference)) or 1.0
        error = float(np.linalg.norm(np.nan_to_num(got, nan=np.inf) - self.reference)) / norm
        return error if np.isfinite(error) else float("inf")


def sensitivity(analysis: onnx.ModelProto, source: onnx.ModelProto, samples: np.ndarray,
                tolerance: float = ACTIVATION_TOLERANCE) -> Sensitivity:
    """Run the sensitivity pass on `analysis`, the W4A8 Q/DQ graph quantized from the float graph `source`, with
    `samples` (inputs, batch first): the nodes to keep float so that 8-bit activations add at most `tolerance`
    relative output error (see the module's docstring)."""
    measure = _Measure(source, samples[:SENSITIVITY_SAMPLES])
    result = Sensitivity(measure.error(analysis))
    if result.error <= tolerance:
        result.sessions = measure.sessions
        return result
    readers = quantized_readers(analysis)
    alone = [(name, op, measure.error(only_quantized(analysis, source, {name}))) for name, op in readers.items()]
    result.node_errors = sorted(alone, key=lambda item: -item[2])
    order = [name for name, _, _ in result.node_errors]

    def error_without(count: int) -> float:
        return measure.error(only_quantized(analysis, source, None, set(order[:count])))

    # grow the kept-float set by doubling until the graph is within tolerance, then bisect for the smallest count;
    # at most MAX_FLOAT_SHARE of the nodes stay float (past that the file is no longer an 8-bit network), and when
    # the tolerance is out of reach there, the measured count with the least error is kept
    cap = max(1, int(MAX_FLOAT_SHARE * len(order)))
    low, high, errors = 0, 1, {0: result.error}
    while high < cap:
        errors[high] = error_without(high)
        if errors[high] <= tolerance:
            break
        low, high = high, 2 * high
    high = min(high, cap)
    errors.setdefault(high, error_without(high))
    if errors[high] > tolerance:
        high = min(errors, key=lambda count: (errors[count], count))
        result.within_tolerance = False
    while high - low > 1 and result.within_tolerance:
        middle = (low + high) // 2
        errors[middle] = error_without(middle)
        low, high = (low, middle) if errors[middle] <= tolerance else (middle, high)
    result.kept_float, result.error_kept, result.sessions = order[:high], errors[high], measure.sessions
    return result
