"""Naming an exported graph's weights as the kit's records name them, found by value where the exporter named them
otherwise.

4-bit export, W4A8 and the shape checks find a layer's weight as the initializer LAYER.weight, and
an LSTM's or GRU's layer k as RNN.weight_ih_lk and RNN.weight_hh_lk (ONNX's W and R: both directions
stacked, gates in ONNX's order). torch's dynamo exporter names a linear layer that reads a 3-D input
after its MatMul (`val_238`, held transposed) and a recurrent layer's W and R after nothing at all;
a graph converted from ONNX keeps its own names. The initializer whose values are exactly the
layer's weight (or its transpose) is renamed, wherever it was found.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper
from torch import nn

from edgewise.base.records import RECURRENT_KINDS
from edgewise.compress.layers import gate_rows, recurrent_matrices, weight_layers


def recurrent_tensor(name: str) -> str:
    """The ONNX tensor (W or R of one layer, both directions) that a recurrent matrix `rnn.weight_ih_l0_reverse` is
    stacked into: `rnn.weight_ih_l0`."""
    return name.removesuffix("_reverse")


def onnx_recurrent(matrices: dict[str, np.ndarray], kind: str) -> np.ndarray:
    """The matrices of one recurrent tensor (forward, then `_reverse`), each restacked into ONNX's gate order, as
    ONNX's (directions, gates x hidden, inputs)."""
    ordered = [matrices[n] for n in sorted(matrices, key=lambda n: n.endswith("_reverse"))]
    return np.stack([m[gate_rows(kind, m.shape[0], to_onnx=True)] for m in ordered])


def expected_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """Every weight an export of `model` holds, by the name the records give it, in the layout torch holds it (a
    recurrent layer's as ONNX's stacked W and R)."""
    out = {f"{n}.weight": m.weight.detach().cpu().numpy() for n, m in weight_layers(model).items()}
    grouped: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    kinds: dict[str, str] = {}
    for key, matrix in recurrent_matrices(model).items():
        grouped[recurrent_tensor(key)][key] = matrix.weight.detach().cpu().numpy()
        kinds[recurrent_tensor(key)] = matrix.kind
    out.update({tensor: onnx_recurrent(matrices, kinds[tensor]) for tensor, matrices in grouped.items()})
    return out


def _matches(init: onnx.TensorProto, expected: np.ndarray) -> bool:
    value = numpy_helper.to_array(init)
    if value.dtype != np.float32:
        return False
    if value.shape == expected.shape and np.array_equal(value, expected):
        return True
    return expected.ndim == 2 and value.shape == expected.shape[::-1] and np.array_equal(value, expected.T)


def _rename(graph: onnx.GraphProto, init: onnx.TensorProto, name: str) -> None:
    old = init.name
    init.name = name
    for node in graph.node:
        for i, value in enumerate(node.input):
            if value == old:
                node.input[i] = name
    for value in graph.input:
        if value.name == old:
            value.name = name


def _fold(proto: onnx.ModelProto, tensor: str) -> None:
    """Compute `tensor` once, when every node it depends on computes from initializers only, and hold it as an
    initializer; the nodes and initializers only it read are dropped."""
    from onnx.reference import ReferenceEvaluator

    graph = proto.graph
    producers = {o: n for n in graph.node for o in n.output}
    inits = {i.name: i for i in graph.initializer}
    needed: dict[int, onnx.NodeProto] = {}
    stack = [tensor]
    while stack:
        name = stack.pop()
        if name in inits:
            continue
        node = producers.get(name)
        if node is None:
            return  # a graph input: not a constant
        if id(node) in needed:
            continue
        if (node.domain or "") not in ("", "ai.onnx") or node.op_type.startswith("Random") or any(
                a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            return
        needed[id(node)] = node
        stack.extend(i for i in node.input if i)
    if not needed:
        return
    nodes = [n for n in graph.node if id(n) in needed]
    leaves = sorted({i for n in nodes for i in n.input if i in inits})
    folding = helper.make_model(helper.make_graph(
        nodes, "fold", [helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in leaves],
        [helper.make_tensor_value_info(tensor, onnx.TensorProto.UNDEFINED, None)]), opset_imports=proto.opset_import)
    value = ReferenceEvaluator(folding).run(None, {n: numpy_helper.to_array(inits[n]) for n in leaves})[0]
    graph.initializer.append(numpy_helper.from_array(np.asarray(value), tensor))
    used = {i for n in graph.node if id(n) not in needed for i in n.input} | {o.name for o in graph.output}
    kept = [n for n in graph.node if id(n) not in needed or any(o in used for o in n.output if o != tensor)]
    del graph.node[:]
    graph.node.extend(kept)
    used |= {i for n in kept for i in n.input}
    unused = [inits[n] for n in leaves if n not in used]
    for init in unused:
        graph.initializer.remove(init)


def name_weights(proto: onnx.ModelProto, model: nn.Module) -> onnx.ModelProto:
    """Rename, in place, each initializer that holds one of `model`'s weights but not under the records' name (see
    the module); weights already so named, and weights the graph does not hold as an initializer, are left. An
    LSTM's or GRU's W and R that the graph computes from the layer's parameters (torch's exporter slices and stacks
    them at run time) are computed once first."""
    graph = proto.graph
    for node in [n for n in graph.node if n.op_type in RECURRENT_KINDS]:
        for tensor in node.input[1:3]:
            _fold(proto, tensor)
    weights = expected_weights(model)
    occupied = {i.name: i for i in graph.initializer if i.name in weights}
    for name, init in occupied.items():  # a name the records give another tensor (the parameter W was made of)
        if tuple(init.dims) not in (weights[name].shape, weights[name].shape[::-1]):
            _rename(graph, init, f"{name}_source")
    present = {i.name for i in graph.initializer}
    expected = {k: v for k, v in weights.items() if k not in present}
    if expected:
        _rename_by_value(graph, expected, weights)
    # shape annotations of renamed or folded tensors would contradict the initializers that now hold the names
    produced = {o for n in graph.node for o in n.output}
    kept = [v for v in graph.value_info if v.name in produced and v.name not in present | set(expected)]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return proto


def _rename_by_value(graph: onnx.GraphProto, expected: dict[str, np.ndarray], weights: dict[str, np.ndarray]
                     ) -> None:
    """Each `expected` weight's initializer, found among the float ones no record names, takes the record's name."""
    pool: dict[tuple[int, ...], list[onnx.TensorProto]] = defaultdict(list)
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and init.name not in weights:
            pool[tuple(init.dims)].append(init)
    for name, value in expected.items():
        shapes = [value.shape, value.shape[::-1]] if value.ndim == 2 else [value.shape]
        found = next((i for shape in shapes for i in pool[shape] if _matches(i, value)), None)
        if found is not None:
            pool[tuple(found.dims)].remove(found)
            _rename(graph, found, name)
