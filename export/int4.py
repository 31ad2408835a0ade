"""INT4 weights in ONNX: quantized records become 4-bit initializers feeding DequantizeLinear (opset 21).

Linear layers become DequantizeLinear (blocked along K, axis 0) -> MatMul -> Add, the pattern
ONNX Runtime fuses into MatMulNBits; a block-wise record's blocks carry their own scales there.
Convolution weights become 4-bit initializers dequantized per tensor, per output channel or per
block of input channels (ONNX Runtime has no 4-bit conv kernel: they are dequantized once when
the session is created, the file is still 8x smaller). Levels that fit [-8, 7] are stored
as INT4; grids shifted to [-7, 8] or unsigned [0, 15] as UINT4 with a zero point.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgewise.base.nibbles import pack_nibbles
from edgewise.base.records import RECURRENT_KINDS, QuantizedLayer
from edgewise.export.errors import ExportError
from edgewise.export.weight_names import onnx_recurrent, recurrent_tensor

MIN_BLOCK = 16


def storage_type(record: QuantizedLayer) -> tuple[int, int]:
    """ONNX element type and zero point for the record's level range: INT4 for [-8, 7], UINT4 with a zero point for
    other 4-bit grids, INT8/UINT8 above 4 bits."""
    if record.bits > 4:
        if record.qmin >= -128 and record.qmax <= 127:
            return TensorProto.INT8, 0
        return TensorProto.UINT8, -record.qmin
    if record.qmin >= -8 and record.qmax <= 7:
        return TensorProto.INT4, 0
    return TensorProto.UINT4, -record.qmin


def int_tensor(name: str, levels: np.ndarray, dtype: int, zero_point: int) -> TensorProto:
    """The levels (offset by the zero point) as an initializer of `dtype`; 4-bit types two per byte."""
    stored = levels.astype(np.int16) + zero_point
    if dtype in (TensorProto.INT4, TensorProto.UINT4):
        return helper.make_tensor(name, dtype, list(levels.shape), pack_nibbles(stored), raw=True)
    array = stored.astype(np.int8 if dtype == TensorProto.INT8 else np.uint8)
    return numpy_helper.from_array(array, name)


def zero_point_tensor(name: str, dtype: int, zero_point: int | np.ndarray, shape: list[int]) -> TensorProto:
    """A zero-point initializer of `shape` holding `zero_point` (broadcast over `shape`)."""
    values = np.broadcast_to(np.asarray(zero_point, dtype=np.int16), shape).reshape(-1)
    if dtype in (TensorProto.INT4, TensorProto.UINT4):
        return helper.make_tensor(name, dtype, shape, pack_nibbles(values), raw=True)
    return numpy_helper.from_array(values.reshape(shape).astype(np.int8 if dtype == TensorProto.INT8 else np.uint8),
                                   name)


def block_size_for(k: int) -> int | None:
    """Block size along K for MatMulNBits: the largest power of two <= min(K, 128), at least 16 (None: too small)."""
    size = 128
    while size > k:
        size //= 2
    return size if size >= MIN_BLOCK else None


def _consumers(graph: onnx.GraphProto, tensor: str) -> list[onnx.NodeProto]:
    return [n for n in graph.node if tensor in n.input]


def check_weight(record: QuantizedLayer, initializer: TensorProto, transpose: bool) -> None:
    """Refuse an exported float weight that is not the record's quantized weight (levels x steps, exactly)."""
    exported = numpy_helper.to_array(initializer)
    expected = record.dequantize()
    if transpose:
        expected = expected.T
    if exported.shape != expected.shape:
        raise ExportError(f"the records are of another model: {record.name} has a weight of shape "
                          f"{tuple(expected.shape)} in them and {tuple(exported.shape)} in the model",
                          "give the records `edgewise quantize` wrote beside this model (its .npz)")
    if not np.array_equal(exported.astype(np.float32), expected):
        raise ExportError(f"the weight of {record.name} is not the quantized weight its record holds: the records are "
                          "of another model, or a BatchNorm was folded into the layer after quantizing",
                          "give the records written with this model; quantize it again (edgewise quantize folds "
                          "batch-norm into its layers first; recipe: fold: true)")


def _matmul_weight(record: QuantizedLayer, output: str) -> tuple[onnx.NodeProto, list[TensorProto]]:
    """The record's levels in MatMul's (K, N) layout and the DequantizeLinear that makes `output` of them: blocked
    along K (axis 0), the pattern ONNX Runtime fuses into MatMulNBits, or per output (axis 1) when K is too small."""
    levels = record.levels.T
    k, n = levels.shape
    dtype, zero_point = storage_type(record)
    prefix = f"{record.name}.weight"
    step = record.step.reshape(-1).astype(np.float32)
    per_output = step if step.size == n else np.full(n, step[0], dtype=np.float32)
    block = record.block or block_size_for(k)
    if block is not None:
        blocks = -(-k // block)
        scale = record.block_steps().T if record.block else np.tile(per_output, (blocks, 1)).astype(np.float32)
        axis, blocked, scale_shape = 0, {"block_size": block}, [blocks, n]
    else:
        scale, axis, blocked, scale_shape = per_output, 1, {}, [n]
    inits = [int_tensor(f"{prefix}_q", levels, dtype, zero_point), numpy_helper.from_array(scale, f"{prefix}_scale")]
    dq_inputs = [f"{prefix}_q", f"{prefix}_scale"]
    if zero_point:
        inits.append(zero_point_tensor(f"{prefix}_zp", dtype, zero_point, scale_shape))
        dq_inputs.append(f"{prefix}_zp")
    return helper.make_node("DequantizeLinear", dq_inputs, [output], name=f"{prefix}_dequantize", axis=axis,
                            **blocked), inits


def _linear(gemm: onnx.NodeProto, record: QuantizedLayer, weight: TensorProto) -> list:
    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        raise ExportError(f"Gemm of {record.name} has transA/alpha/beta set", "export plain nn.Linear layers")
    check_weight(record, weight, transpose=not attrs.get("transB", 0))
    prefix = f"{record.name}.weight"
    dq, inits = _matmul_weight(record, f"{prefix}_dq")
    nodes = [dq]
    out = gemm.output[0]
    bias = gemm.input[2] if len(gemm.input) > 2 and gemm.input[2] else f"{prefix}_zero_bias"
    if bias == f"{prefix}_zero_bias":
        # ONNX Runtime (1.32) leaves a DequantizeLinear -> MatMul -> Relu unfused: without the Add a bias-free layer
        # before an activation ran 20x slower than as MatMulNBits
        inits.append(numpy_helper.from_array(np.zeros(record.levels.shape[0], dtype=np.float32), bias))
    nodes.append(helper.make_node("MatMul", [gemm.input[0], f"{prefix}_dq"], [f"{out}_matmul"],
                                  name=f"{gemm.name}_matmul"))
    nodes.append(helper.make_node("Add", [f"{out}_matmul", bias], [out], name=f"{gemm.name}_bias"))
    return [nodes, inits]


def _matmul(record: QuantizedLayer, weight: TensorProto) -> list:
    """A MatMul that holds its weight as (K, N) (a linear layer of a graph converted from ONNX): the weight becomes
    the DequantizeLinear's output, the MatMul and any Add after it stay."""
    check_weight(record, weight, transpose=True)
    dq, inits = _matmul_weight(record, weight.name)
    return [[dq], inits]


def _conv(record: QuantizedLayer, weight: TensorProto, node: onnx.NodeProto) -> list:
    check_weight(record, weight, transpose=False)
    dtype, zero_point = storage_type(record)
    prefix = f"{record.name}.weight"
    if record.block is not None:
        scale, axis, blocked = record.block_steps(), record.input_axis, {"block_size": record.block}
    else:
        step = record.step.astype(np.float32)
        scale, axis, blocked = step.reshape(-1) if step.size > 1 else step.reshape(()), record.axis or 0, {}
    inits = [int_tensor(f"{prefix}_q", record.levels, dtype, zero_point),
             numpy_helper.from_array(scale, f"{prefix}_scale")]
    dq_inputs = [f"{prefix}_q", f"{prefix}_scale"]
    if zero_point:
        inits.append(zero_point_tensor(f"{prefix}_zp", dtype, zero_point, list(scale.shape)))
        dq_inputs.append(f"{prefix}_zp")
    dq = helper.make_node("DequantizeLinear", dq_inputs, [weight.name], name=f"{prefix}_dequantize", axis=axis,
                          **blocked)
    return [[dq], inits]


def _shared_storage(records: list[QuantizedLayer]) -> tuple[int, np.ndarray]:
    """One element type for records stored in one tensor, and each record's zero point: signed when every record's
    levels fit the signed type, else unsigned with each record's -qmin."""
    types = [storage_type(r) for r in records]
    if all(zero == 0 for _, zero in types):
        return types[0][0], np.zeros(len(records), dtype=np.int16)
    unsigned = TensorProto.UINT4 if records[0].bits <= 4 else TensorProto.UINT8
    return unsigned, np.array([-r.qmin for r in records], dtype=np.int16)


def _recurrent(tensor: str, records: list[QuantizedLayer], kind: str, weight: TensorProto
               ) -> tuple[onnx.NodeProto, list[TensorProto]]:
    """The DequantizeLinear that makes a recurrent layer's W or R (`tensor`, both directions stacked in ONNX's gate
    order) of its records' levels: blocked along the inputs (axis 2), a block per row unless the records have
    blocks, so every direction and gate unit keeps its own step."""
    blocks = {r.block for r in records}
    if len(blocks) > 1:
        raise ExportError(f"the directions of {tensor} were quantized with different blocks",
                          "quantize the model again with one setting")
    block = records[0].block or records[0].levels.shape[1]

    def stacked(of: Callable[[QuantizedLayer], np.ndarray]) -> np.ndarray:
        return onnx_recurrent({r.name: of(r) for r in records}, kind)

    levels = stacked(lambda r: r.levels)
    scale = stacked(lambda r: r.block_steps() if r.block else np.broadcast_to(
        r.scale().reshape(-1, 1), (r.levels.shape[0], 1))).astype(np.float32)
    expected = stacked(QuantizedLayer.dequantize)
    if tuple(weight.dims) != expected.shape or not np.array_equal(numpy_helper.to_array(weight), expected):
        raise ExportError(f"the weight {tensor} is not the quantized weight its records hold",
                          "give the records written with this model")
    dtype, zero_points = _shared_storage(records)
    inits = [int_tensor(f"{tensor}_q", levels, dtype, zero_points.reshape(-1, 1, 1)),
             numpy_helper.from_array(scale, f"{tensor}_scale")]
    dq_inputs = [f"{tensor}_q", f"{tensor}_scale"]
    if zero_points.any():
        inits.append(zero_point_tensor(f"{tensor}_zp", dtype, zero_points.reshape(-1, 1, 1), list(scale.shape)))
        dq_inputs.append(f"{tensor}_zp")
    return helper.make_node("DequantizeLinear", dq_inputs, [tensor], name=f"{tensor}_dequantize", axis=2,
                            block_size=block), inits


def recurrent_groups(records: dict[str, QuantizedLayer]) -> dict[str, list[QuantizedLayer]]:
    """The recurrent records by the ONNX tensor (W or R of one layer) they are stacked into, forward first."""
    groups: dict[str, list[QuantizedLayer]] = {}
    for name in sorted(records, key=lambda n: n.endswith("_reverse")):
        if records[name].kind in RECURRENT_KINDS:
            groups.setdefault(recurrent_tensor(name), []).append(records[name])
    return groups


def quantize_recurrent(model: onnx.ModelProto, records: dict[str, QuantizedLayer]) -> onnx.ModelProto:
    """Replace each recorded LSTM's or GRU's float W and R with 4-bit integers and a DequantizeLinear, in place (the
    other records are left)."""
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    for tensor, group in recurrent_groups(records).items():
        node = next((n for n in graph.node if n.op_type in RECURRENT_KINDS and tensor in n.input[1:3]), None)
        if tensor not in initializers or node is None:
            raise ExportError(f"recurrent layer {tensor.rsplit('.', 1)[0]} has no weight {tensor} in the exported "
                              "graph", "export the same (pruned) model that was quantized")
        dq, inits = _recurrent(tensor, group, node.op_type, initializers[tensor])
        graph.node.insert(list(graph.node).index(node), dq)
        graph.initializer.remove(initializers[tensor])
        graph.initializer.extend(inits)
    return model


def quantize_graph(model: onnx.ModelProto, records: dict[str, QuantizedLayer]) -> onnx.ModelProto:
    """Replace each recorded layer's float weight with 4-bit (or 8-bit) integers and a DequantizeLinear, in place."""
    quantize_recurrent(model, records)
    records = {n: r for n, r in records.items() if r.kind not in RECURRENT_KINDS}
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    new_nodes: dict[int, list[onnx.NodeProto]] = {}
    replaced: set[str] = set()
    extra_inits: list[TensorProto] = []
    drop_nodes: set[int] = set()
    for name, record in records.items():
        weight_name = f"{name}.weight"
        if weight_name not in initializers:
            raise ExportError(f"layer {name} has no initializer {weight_name} in the exported graph",
                              "export the same (pruned) model that was quantized")
        consumers = _consumers(graph, weight_name)
        if len(consumers) != 1:
            raise ExportError(f"weight {weight_name} feeds {len(consumers)} nodes, expected one",
                              "export the same (pruned) model that was quantized")
        node = consumers[0]
        index = list(graph.node).index(node)
        if node.op_type == "Gemm":
            nodes, inits = _linear(node, record, initializers[weight_name])
            drop_nodes.add(index)
        elif node.op_type == "MatMul" and list(node.input).index(weight_name) == 1:
            nodes, inits = _matmul(record, initializers[weight_name])
        elif node.op_type == "Conv":
            nodes, inits = _conv(record, initializers[weight_name], node)
        else:
            raise ExportError(f"weight {weight_name} feeds a {node.op_type} node; only Gemm, MatMul and Conv "
                              "take 4-bit weights",
                              f"leave {name} out of quantization (quantize: ignore)")
        new_nodes[index] = nodes
        extra_inits.extend(inits)
        replaced.add(weight_name)
    rebuilt = []
    for i, node in enumerate(graph.node):
        rebuilt.extend(new_nodes.get(i, []))
        if i not in drop_nodes:
            rebuilt.append(node)
    del graph.node[:]
    graph.node.extend(rebuilt)
    kept = [i for i in graph.initializer if i.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(kept + extra_inits)
    return model
