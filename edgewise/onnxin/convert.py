"""ONNX in: an ONNX file as a torch module the compression stages can prune, quantize and export again.

onnx2torch does the op-by-op conversion through the kit's op handlers (edgewise.onnxin.handlers: opsets 7 to 21,
LSTM and GRU). Around it, this module prepares the file the way exporters in the wild need (weights held as Constant
nodes, as Paddle writes them, become initializers; tensors whose rank shape inference cannot find are given the
rank ONNX Runtime observes on the reference sample), runs a file whose batch is fixed (vendor files: batch 1) slice
by slice, names every op it cannot convert in one line, and checks the conversion against ONNX Runtime.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import numpy as np
import onnx
import torch
from onnx import helper
from torch import nn

from edgewise.board.errors import UserError, first_line
from edgewise.board.session import run_samples, session_options
from edgewise.export.onnx_file import ort_message, read_onnx
from edgewise.onnxin.graph import CONVERT_RTOL, OnnxGraph
from edgewise.onnxin.handlers import install
from edgewise.onnxin.versions import UnsupportedNode

FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)
INTEGER_TYPES = {onnx.TensorProto.INT8: np.int8, onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.INT16: np.int16,
                 onnx.TensorProto.INT32: np.int32, onnx.TensorProto.INT64: np.int64}


def _unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """The op types (domain:op@opset) of `model` that no converter or handler covers."""
    from onnx2torch.node_converters.registry import get_converter

    opsets = {o.domain or "": o.version for o in model.opset_import}
    missing = []
    for node in model.graph.node:
        domain = node.domain or ""
        if domain == "ai.onnx":
            domain = ""
        try:
            get_converter(node.op_type, opsets.get(domain, opsets.get("", 1)), domain)
        except NotImplementedError:
            name = f"{domain + ':' if domain else ''}{node.op_type}@{opsets.get(domain, '?')}"
            if name not in missing:
                missing.append(name)
    return missing


def _constants_as_initializers(model: onnx.ModelProto) -> None:
    """Constant nodes holding a tensor become initializers: converters read weights from initializers only."""
    keep = []
    for node in model.graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None and value.type == onnx.AttributeProto.TENSOR:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]  # old exporters list weights as inputs too
    del model.graph.input[:]
    model.graph.input.extend(inputs)


def _folded_constants(model: onnx.ModelProto) -> None:
    """Nodes that compute from initializers only become initializers (onnx's reference evaluator runs them once):
    torch's exporter writes a bidirectional LSTM's weights as a Concat of each direction's, and converters read
    weights from initializers only."""
    from onnx.reference import ReferenceEvaluator

    constant = {i.name for i in model.graph.initializer}
    opsets = list(model.opset_import)
    keep = []
    for node in model.graph.node:
        inputs = [name for name in node.input if name]
        has_graph = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
        if node.op_type in ("Constant", "RandomNormal", "RandomUniform") or has_graph or not inputs or \
                not all(name in constant for name in inputs) or (node.domain or "") not in ("", "ai.onnx"):
            keep.append(node)
            continue
        values = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer if i.name in inputs}
        single = helper.make_model(helper.make_graph(
            [node], "fold", [helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in inputs],
            [helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in node.output if n]),
            opset_imports=opsets)
        try:
            results = ReferenceEvaluator(single).run(None, {n: values[n] for n in inputs})
        except Exception:  # an op the reference evaluator lacks stays a node for onnx2torch
            keep.append(node)
            continue
        for name, value in zip([n for n in node.output if n], results, strict=True):
            model.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(value), name))
            constant.add(name)
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _observed(model: onnx.ModelProto, sample: np.ndarray, batch: int | None, names: list[str]
              ) -> dict[str, np.ndarray]:
    """The values the named tensors take when ONNX Runtime runs `model` on the first samples (one fixed batch, or two)
    of `sample`: one run with them added to the graph's outputs."""
    if not names:
        return {}
    probe = copy.deepcopy(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.ValueInfoProto(name=name) for name in dict.fromkeys(names) if name not in known)
    outputs = [o.name for o in probe.graph.output]
    values = dict(zip(outputs, _session_run(probe)(sample[:batch or 2]), strict=True))
    return {name: np.asarray(values[name]) for name in names}


def _unranked(model: onnx.ModelProto) -> list[str]:
    """The tensors whose rank shape inference leaves open."""
    inferred = onnx.shape_inference.infer_shapes(model)
    ranked = {v.name for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
              if v.type.tensor_type.HasField("shape")}
    ranked |= {i.name for i in model.graph.initializer}
    return [o for n in model.graph.node for o in n.output if o and o not in ranked]


def _given_ranks(model: onnx.ModelProto, seen: dict[str, np.ndarray]) -> None:
    """Give each tensor of `seen` the rank ONNX Runtime observed (dims kept symbolic, so the batch and image sizes stay
    free): converters need every rank."""
    for name, value in seen.items():
        model.graph.value_info.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(value.dtype), [f"{name}_d{i}" for i in range(value.ndim)]))


def _constant_reshapes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    inits = {i.name for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "Reshape" and len(n.input) > 1 and n.input[1] in inits]


def _flattens_at_any_width(model: onnx.ModelProto, reshapes: list[onnx.NodeProto], seen: dict[str, np.ndarray]
                           ) -> None:
    """Each Reshape of `reshapes` (by a constant shape) that merges the trailing axes of its input as `seen` on the
    sample ((N, C, H, W) -> (N, C*H*W), or a recogniser's (N, W, C, H) -> (N, W, C*H)) gets the shape
    [0, ..., 0, -1]: the same reshape at every width, so cutting the channels it merges no longer breaks it (a
    static exporter writes the widths as numbers)."""
    inits = {i.name: i for i in model.graph.initializer}
    for node in reshapes:
        target = [int(d) for d in onnx.numpy_helper.to_array(inits[node.input[1]]).reshape(-1)]
        source = seen[node.input[0]].shape
        if 0 in target or target.count(-1) > 1:
            continue
        if -1 in target:  # the one inferred size, as it came out on the sample
            target[target.index(-1)] = int(np.prod(source)) // max(1, -int(np.prod(target)))
        keep = len(target) - 1
        if keep < 1 or len(source) <= len(target) or list(source[:keep]) != target[:keep] or \
                int(np.prod(source[keep:])) != target[keep]:
            continue
        name = f"{node.input[1]}_merged_{keep}"
        if name not in inits:
            inits[name] = onnx.numpy_helper.from_array(np.array([0] * keep + [-1], dtype=np.int64), name)
            model.graph.initializer.append(inits[name])
        node.input[1] = name
        for index in reversed([i for i, a in enumerate(node.attribute) if a.name == "allowzero"]):
            del node.attribute[index]  # 0 copies the input's axis


def _input_dtype(value: onnx.ValueInfoProto, path: str | os.PathLike[str]) -> type:
    """The numpy type samples of the model's input `value` take: float32 for a float input, the integer type of an
    integer one (tokens, bytes); other element types are a UserError."""
    element = value.type.tensor_type.elem_type
    if element in FLOAT_TYPES:
        return np.float32
    if element in INTEGER_TYPES:
        return INTEGER_TYPES[element]
    kind = onnx.TensorProto.DataType.Name(element).lower()
    raise UserError(f"{path}: input {value.name} holds {kind} values; compression takes float or integer inputs",
                    "bench and emulate the model as it is")


def _batch_of_input(value: onnx.ValueInfoProto, shape: tuple[int, ...], path: str | os.PathLike[str]) -> int | None:
    """The batch size the model's input is fixed at (a vendor file's 1), or None when the batch is free; another rank
    or another fixed sample size than the data's batches (`shape`) is a UserError naming both."""
    dims = [d.dim_value if d.dim_value > 0 else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim]
    if not dims:  # an input without a declared shape takes what ONNX Runtime accepts
        return None
    fixed = [(i, d) for i, d in enumerate(dims) if isinstance(d, int) and i > 0]
    if len(dims) != len(shape) or any(shape[i] != d for i, d in fixed):
        raise UserError(f"{path}: input {value.name} is {dims}; a batch of the data's samples is {list(shape)}",
                        "give data of the model's input shape (a .npz x of that layout, or a folder's size)")
    batch = dims[0]
    return batch if isinstance(batch, int) else None


def _session_run(model: onnx.ModelProto) -> Callable[[np.ndarray], list[np.ndarray]]:
    """A function running `model` in ONNX Runtime (exact, no graph optimisation) on samples of its first input,
    in slices of its fixed batch where it has one."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), session_options(fast=False),
                                   providers=["CPUExecutionProvider"])
    return lambda x: run_samples(session, x)


def onnx_to_torch(path: str | os.PathLike[str], sample: np.ndarray) -> nn.Module:
    """The ONNX model at `path` as a torch module (an OnnxGraph), checked against ONNX Runtime on `sample` (a batch of
    the model's first input): ops without a converter, or outputs that differ by more than CONVERT_RTOL of their
    scale, are a UserError naming them."""
    from onnx2torch import convert

    install()
    model = read_onnx(path, checker=True)
    missing = _unsupported_ops(model)
    if missing:
        raise UserError(f"{path} uses ops that cannot be converted to torch: {', '.join(missing)}",
                        "register a handler for them (edgewise.onnxin.register_op_handler), or bench and emulate "
                        "the model as it is")
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise UserError(f"{path} takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)})",
                        "compression takes models with one input (an image, a sequence or a feature vector); bench "
                        "the model as it is")
    sample = np.ascontiguousarray(sample, dtype=_input_dtype(inputs[0], path))
    batch = _batch_of_input(inputs[0], sample.shape, path)
    try:  # the reference the conversion is checked against; a model that refuses the data's samples says so here
        expected = _session_run(model)(sample)[0]
    except UserError:
        raise
    except Exception as exc:  # onnxruntime's own exception types
        raise UserError(f"ONNX Runtime cannot run {path} on the data's samples of shape {list(sample.shape)}: "
                        f"{ort_message(exc)}", "give data of the size the model takes (a detector's sides are often "
                        "multiples of 32; a folder's size sets it)") from None
    _constants_as_initializers(model)
    _folded_constants(model)
    try:
        unranked, reshapes = _unranked(model), _constant_reshapes(model)
        seen = _observed(model, sample, batch, unranked + [n.input[0] for n in reshapes])
        _given_ranks(model, {name: seen[name] for name in unranked})
        _flattens_at_any_width(model, reshapes, seen)
        module = OnnxGraph(convert(model, attach_onnx_mapping=True), model, batch).eval()
        with torch.no_grad():
            got = module(torch.from_numpy(sample))
    except UserError:
        raise
    except Exception as exc:  # onnx2torch and the converted layers raise NotImplementedError, ValueError, KeyError...
        what = first_line(exc) if isinstance(exc, UnsupportedNode) else f"{type(exc).__name__}: {first_line(exc)}"
        raise UserError(f"{path} cannot be converted to torch: {what}",
                        "bench and emulate the model as it is, or register a handler for the op "
                        "(edgewise.onnxin.register_op_handler)") from None
    got = (got[0] if isinstance(got, tuple) else got).numpy()
    diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if diff > CONVERT_RTOL * max(1.0, float(np.abs(expected).max())):
        raise UserError(f"{path} converted to torch computes other outputs than ONNX Runtime (largest difference "
                        f"{diff:.3g})", "report the model to Edgewise; bench and emulate it as it is meanwhile")
    return module
