"""MACs, weights and per-layer traffic of an ONNX model at the shapes it runs with: one count serves every use.

The model runs once, as written (no graph optimizations), at the stated inputs, with ONNX
Runtime's profiler on: every executed node reports the shapes it saw, including nodes inside
If and Loop bodies (the branch taken, the iterations run). MACs come from those shapes for the
layers that carry compute (convolutions, transposed convolutions, Gemm, MatMul between weights or
activations, the recurrent cells, and their quantized forms); weights are every constant tensor
(initializers and Constant nodes, in subgraphs too) at the width it is stored (4-bit weights at
half a byte). What cannot be counted is reported with the reason, never as 0.
"""

from __future__ import annotations

import glob
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edgewise.bench.inputs import Inputs
from edgewise.board.errors import UserError
from edgewise.export.onnx_file import load_fix, ort_message, read_onnx

# bytes per element of the type names ONNX Runtime's profiler writes
_TYPE_BYTES = {"float": 4, "double": 8, "float16": 2, "bfloat16": 2, "int64": 8, "uint64": 8, "int32": 4,
               "uint32": 4, "int16": 2, "uint16": 2, "int8": 1, "uint8": 1, "bool": 1, "int4": 0.5, "uint4": 0.5}
_BITS = {onnx.TensorProto.INT4: 4, onnx.TensorProto.UINT4: 4, onnx.TensorProto.INT8: 8, onnx.TensorProto.UINT8: 8,
         onnx.TensorProto.FLOAT16: 16, onnx.TensorProto.BFLOAT16: 16, onnx.TensorProto.FLOAT: 32,
         onnx.TensorProto.DOUBLE: 64, onnx.TensorProto.INT32: 32, onnx.TensorProto.INT64: 64}
# compute ops whose work is known from shapes, and heavy ops whose work is not modelled (reported as unknown)
COUNTED = ("Conv", "ConvInteger", "QLinearConv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger", "QLinearMatMul",
           "FusedMatMul", "MatMulNBits", "LSTM", "GRU", "RNN")
UNMODELLED = ("Attention", "MultiHeadAttention", "GroupQueryAttention", "QAttention", "Einsum", "FusedConv",
              "NhwcConv", "DynamicQuantizeMatMul")
MODELLED_DOMAINS = ("", "ai.onnx", "com.microsoft")
"""Op domains whose ops the counts know; an op of any other (ai.onnx.ml's trees and linear models, a vendor's) is
reported as not modelled, never as zero MACs."""
_WEIGHT_INPUT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3, "ConvTranspose": 1}
_QLINEAR = ("QLinearConv", "QLinearMatMul")  # (x, x scale, x zero point, w, ...): the weight is the fourth input


@dataclass
class LayerCount:
    """One compute layer as it ran: its MACs, the bytes of its weights (as stored) and of its activations."""

    name: str
    op: str
    macs: int
    weight_bytes: int
    activation_bytes: int
    weight_bits: int | None  # stored width of its weights (4 for 4-bit), None when both operands are activations
    int8_activations: bool = False  # fed through an int8 QuantizeLinear/DequantizeLinear pair


@dataclass
class Counts:
    """A model's counts at one input specification; `macs` is None when some compute could not be counted."""

    macs: int | None
    macs_counted: int
    weight_bytes: int
    parameters: int
    activation_bytes: int
    layers: list[LayerCount] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    nodes_run: int = 0
    inputs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The totals, the reasons for anything uncounted and the inputs they hold for (layers left out)."""
        out = asdict(self)
        out.pop("layers")
        out["layers_counted"] = len(self.layers)
        return out


def _graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    """`graph` and every subgraph below it (If branches, Loop and Scan bodies)."""
    found = [graph]
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                found += _graphs(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    found += _graphs(sub)
    return found


def _constants(graphs: list[onnx.GraphProto]) -> dict[str, onnx.TensorProto]:
    """Every constant tensor by name: initializers and the values of Constant nodes."""
    out = {i.name: i for g in graphs for i in g.initializer}
    for g in graphs:
        for node in g.node:
            if node.op_type == "Constant":
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    out[node.output[0]] = value
    return out


def _stored_bytes(tensor: onnx.TensorProto) -> int:
    if tensor.raw_data:
        return len(tensor.raw_data)
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return next((int(e.value) for e in tensor.external_data if e.key == "length"), 0)
    return int(numpy_helper.to_array(tensor).nbytes)


def _numel(shape: list[int]) -> int:
    return math.prod(shape) if shape else 1


def _macs(op: str, inputs: list[tuple[str, list[int]]], outputs: list[tuple[str, list[int]]]) -> int:
    out = outputs[0][1]
    shapes = [s for _, s in inputs]
    if op in _WEIGHT_INPUT:
        weight = shapes[_WEIGHT_INPUT[op]]
        if op == "ConvTranspose":  # every input element scatters into (out channels / groups) x kernel outputs
            return _numel(shapes[0]) * _numel(weight[1:])
        return _numel(out) * _numel(weight[1:])  # every output element: (in channels / groups) x kernel
    if op in ("LSTM", "GRU", "RNN"):  # X [seq, batch, in]; W and R hold every gate of every direction
        x = shapes[0]
        return x[0] * x[1] * (_numel(shapes[1]) + _numel(shapes[2]))
    a = shapes[0]
    if op == "Gemm":
        return _numel(out) * (_numel(a) // max(out[0], 1))
    return _numel(out) * (a[-1] if a else 1)  # MatMul family: every output element sums over K


def _name_nodes(graphs: list[onnx.GraphProto]) -> dict[str, onnx.NodeProto]:
    """Give every node a unique name (the profiler reports nodes by name) and return them by name."""
    nodes, seen = {}, set()
    for g in graphs:
        for i, node in enumerate(g.node):
            if not node.name or node.name in seen:
                node.name = f"edgewise.{len(seen)}.{i}.{node.op_type}"
            seen.add(node.name)
            nodes[node.name] = node
    return nodes


def _profile(model: onnx.ModelProto, inputs: Inputs) -> list[dict[str, Any]]:
    """The node events of one run of `model` as written, with ONNX Runtime's profiler on."""
    import onnxruntime as ort

    from edgewise.board.session import session_options

    with tempfile.TemporaryDirectory(prefix="edgewise-counts-") as scratch:
        # a model it cannot load is our one-line error, not its log line too
        options = session_options(fast=False, profile_prefix=os.path.join(scratch, "profile"), log_severity=4)
        try:
            session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types
            raise UserError(f"ONNX Runtime cannot load the model: {ort_message(exc)}", load_fix(exc)) from None
        try:
            session.run(None, inputs.feeds)
        except Exception as exc:
            raise UserError(f"ONNX Runtime cannot run the model at {inputs.text()}: {ort_message(exc)}",
                            "check the input shapes and dtypes (--input NAME:SHAPE:DTYPE)") from None
        session.end_profiling()
        with open(glob.glob(os.path.join(scratch, "profile*.json"))[0], encoding="utf-8") as fh:
            events = json.load(fh)
    return [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]


def _typed(entries: list[dict[str, list[int]]]) -> list[tuple[str, list[int]]]:
    return [next(iter(e.items())) for e in entries]


def _aligned(names: list[str], reported: list[tuple[str, list[int]]], constant_of: Any) -> list[tuple[str, list[int]]]:
    """The (type, shape) of each named input: as reported where every input was; else constants from the file (ONNX
    Runtime leaves out weights it pre-packed at load) and the reported shapes, in order, for the rest."""
    if len(reported) >= len(names):
        return reported
    out, rest = [], iter(reported)
    for name in names:
        constant = constant_of(name)
        if constant is not None:
            out.append(("float", list(constant.dims)))
        else:
            out.append(next(rest, ("float", [])))
    return out


def count_onnx(path: str | os.PathLike[str], inputs: Inputs) -> Counts:
    """Count the ONNX model at `path` as it runs on `inputs` (see the module's description)."""
    model = read_onnx(path)
    graphs = _graphs(model.graph)
    constants = _constants(graphs)
    nodes = _name_nodes(graphs)
    producers = {out: node for node in nodes.values() for out in node.output}

    def weight_bits(name: str) -> int | None:
        """Stored width of the constant behind input `name` (directly, or through a DequantizeLinear)."""
        if name in constants:
            return _BITS.get(constants[name].data_type, 32)
        producer = producers.get(name)
        if producer is not None and producer.op_type == "DequantizeLinear" and producer.input[0] in constants:
            return _BITS.get(constants[producer.input[0]].data_type, 8)
        return None

    def constant_of(name: str) -> onnx.TensorProto | None:
        """The stored constant behind input `name`, directly or through a DequantizeLinear."""
        if name in constants:
            return constants[name]
        producer = producers.get(name)
        if producer is not None and producer.op_type == "DequantizeLinear" and producer.input[0] in constants:
            return constants[producer.input[0]]
        return None

    def int8_activation(name: str) -> bool:
        producer = producers.get(name)
        return (producer is not None and producer.op_type == "DequantizeLinear" and producer.input[0] not in constants)

    layers, unknown, run = [], [], 0
    for event in _profile(model, inputs):
        run += 1
        op, name = event["args"]["op_name"], event["name"].removesuffix("_kernel_time")
        node = nodes.get(name)
        domain = node.domain if node is not None else ""
        if op in UNMODELLED or domain not in MODELLED_DOMAINS:
            unknown.append(f"{f'{domain}:' if domain not in MODELLED_DOMAINS else ''}{op} {name}: its work is not "
                           "modelled")
            continue
        if op not in COUNTED:
            continue
        names = [n for n in node.input if n] if node is not None else []  # the profiler leaves out omitted inputs
        ins = _aligned(names, _typed(event["args"].get("input_type_shape", [])), constant_of)
        outs = _typed(event["args"]["output_type_shape"])
        bits = [weight_bits(n) for n in names] + [None] * max(len(ins) - len(names), 0)
        weight, activation = 0, 0
        for (dtype, shape), bit in zip(ins, bits, strict=False):
            if bit is None:
                activation += int(_numel(shape) * _TYPE_BYTES.get(dtype, 4))
            else:
                weight += math.ceil(_numel(shape) * bit / 8)
        activation += sum(int(_numel(s) * _TYPE_BYTES.get(t, 4)) for t, s in outs)
        at = 3 if op in _QLINEAR else 1
        main_weight = bits[at] if len(bits) > at else None
        if op == "MatMulNBits" and node is not None:  # its weights are packed into uint8: the width is an attribute
            main_weight = next((a.i for a in node.attribute if a.name == "bits"), 4)
        layers.append(LayerCount(name, op, _macs(op, ins, outs), weight, activation, main_weight,
                                 bool(names) and int8_activation(names[0])))
    counted = sum(layer.macs for layer in layers)
    parameters = sum(int(np.prod(t.dims)) for t in constants.values()
                     if t.data_type not in (onnx.TensorProto.INT64, onnx.TensorProto.BOOL))
    # ops of other domains keep what they learned in attributes (a tree ensemble's thresholds and leaf values)
    parameters += sum(len(a.floats) + len(a.ints) + int(np.prod(a.t.dims)) * a.HasField("t")
                      for n in nodes.values() if n.domain not in MODELLED_DOMAINS for a in n.attribute)
    return Counts(None if unknown else counted, counted, sum(_stored_bytes(t) for t in constants.values()),
                  parameters, sum(layer.activation_bytes for layer in layers), layers, unknown, run, inputs.spec)
