"""ONNX in: an ONNX file as a torch module the compression stages can prune, quantize and export again.

onnx2torch does the op-by-op conversion (it is maintained, covers opsets 9-17 of the standard
domain, and maps Conv, Gemm and BatchNormalization to torch's own layers, which the pruning graph
and LRP rules know). Around it, this module prepares the file the way exporters in the wild need
(weights held as Constant nodes, as Paddle writes them, become initializers; tensors whose rank
shape inference cannot find are given the rank ONNX Runtime observes on the reference sample),
names every op it cannot convert in one line, and replaces the fx.GraphModule by `OnnxGraph`, a
module that runs the same steps from plain data: a GraphModule pickles generated Python code,
which a model file must not carry.
"""

from __future__ import annotations

import copy
import operator
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper
from torch import nn

from edgewise.base.errors import UserError, first_line
from edgewise.compress.layers import converted_from_onnx
from edgewise.export.onnx_export import OPSET
from edgewise.export.onnx_file import ort_message, read_onnx
from edgewise.export.session import session_options

CONVERT_RTOL = 1e-3
"""Largest difference, relative to the output's scale, between the converted module and ONNX Runtime on the sample."""

# onnx2torch modules that hold a torch function picked by their op type from one of its tables: a model file keeps
# the op type (a string) instead, and the function is looked up again when it loads
_FUNCTION_ATTRIBUTES = (
    ("binary_math_operations", "OnnxBinaryMathOperation", "math_op_function"),
    ("reduce", "OnnxReduceStaticAxes", "math_op_function"),
    ("reduce", "OnnxReduceSymbolicAxes", "math_op_function"),
    ("functions", "OnnxFunction", "function"),
)


def _function_tables() -> dict[tuple[str, str], dict[str, Any]]:
    import importlib

    tables = {}
    for module_name, cls, attr in _FUNCTION_ATTRIBUTES:
        module = importlib.import_module(f"onnx2torch.node_converters.{module_name}")
        tables[(cls, attr)] = module._TORCH_FUNCTION_FROM_ONNX_TYPE
    return tables


def _unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """The op types (domain:op@opset) of `model` that onnx2torch has no converter for."""
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


def _observed_ranks(model: onnx.ModelProto, sample: np.ndarray) -> None:
    """Give every tensor whose rank shape inference left open the rank ONNX Runtime observes on `sample` (dims kept
    symbolic, so the batch and image sizes stay free)."""
    import onnxruntime as ort

    inferred = onnx.shape_inference.infer_shapes(model)
    ranked = {v.name for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
              if v.type.tensor_type.HasField("shape")}
    ranked |= {i.name for i in model.graph.initializer}
    open_names = [o for n in model.graph.node for o in n.output if o and o not in ranked]
    if not open_names:
        return
    probe = copy.deepcopy(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.ValueInfoProto(name=name) for name in open_names if name not in known)
    session = ort.InferenceSession(probe.SerializeToString(), session_options(fast=False),
                                   providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: sample})
    values = {o.name: np.asarray(v) for o, v in zip(session.get_outputs(), outputs, strict=True)}
    for name in open_names:
        value = values[name]
        model.graph.value_info.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(value.dtype), [f"{name}_d{i}" for i in range(value.ndim)]))


class OnnxGraph(nn.Module):
    """A converted ONNX graph: its layers as submodules and its steps as plain data, run in order.

    Each step is [kind, name, target, args]: kind is input, attr (an initializer buffer), module
    (a submodule called with the args), item (one output of a multi-output step) or output; args
    are nested lists whose ["ref", name] entries stand for earlier steps' values.
    """

    def __init__(self, graph_module: torch.fx.GraphModule, source: onnx.ModelProto) -> None:
        super().__init__()
        for name, child in graph_module.named_children():
            self.add_module(name, child)
        _constants_as_parameters(self)
        # the graph it came from, so export can write that graph again with this module's (pruned) weights
        self.source = source.SerializeToString()
        self.tensors: dict[str, list[str]] = {}  # per layer: the ONNX tensor names of its inputs, then its outputs
        for name, child in graph_module.named_children():
            mapping = child.__dict__.pop("onnx_mapping", None)
            if mapping is not None:
                self.tensors[name] = [*mapping.inputs, "->", *mapping.outputs]
        self.steps: list[list[Any]] = []
        for node in graph_module.graph.nodes:
            if node.op == "placeholder":
                self.steps.append(["input", node.name, None, []])
            elif node.op == "get_attr":
                self.steps.append(["attr", node.name, node.target, []])
            elif node.op == "call_module":
                self.steps.append(["module", node.name, node.target, _spec(node.args)])
            elif node.op == "call_function" and node.target is operator.getitem:
                self.steps.append(["item", node.name, None, _spec(node.args)])
            elif node.op == "output":
                self.steps.append(["output", node.name, None, _spec(node.args[0])])
            else:
                raise UserError(f"the converted graph has a step Edgewise cannot keep ({node.op} {node.target})",
                                "simplify the ONNX file (onnxsim) and try again")
        _matmuls_as_linear(self)

    def forward(self, *inputs: torch.Tensor) -> Any:
        """Run the steps on `inputs` (the ONNX graph's inputs, in order); one output, or a tuple of several."""
        values: dict[str, Any] = {}
        given = iter(inputs)
        for kind, name, target, args in self.steps:
            if kind == "input":
                values[name] = next(given)
            elif kind == "attr":
                values[name] = _attribute(self, target)
            elif kind == "module":
                values[name] = self.get_submodule(target)(*_resolve(args, values))
            elif kind == "item":
                value, index = _resolve(args, values)
                values[name] = value[index]
            else:
                return _resolve(args, values)
        raise RuntimeError("the converted graph has no output step")


def _refs(spec: Any) -> Iterator[str]:
    """The names of the steps `spec` refers to."""
    kind, value = spec
    if kind == "ref":
        yield value
    elif kind == "seq":
        for item in value:
            yield from _refs(item)


def _renamed(spec: Any, old: str, new: str) -> Any:
    kind, value = spec
    if kind == "ref":
        return ["ref", new if value == old else value]
    if kind == "seq":
        return ["seq", [_renamed(v, old, new) for v in value]]
    return spec


def _matmuls_as_linear(graph: OnnxGraph) -> None:
    """Each MatMul by a constant (K, N) matrix, with the Add of a constant (N,) vector after it, becomes one nn.Linear
    (in place): Paddle, TensorFlow and torch itself (on 3-D inputs) write linear layers so, and as Linear they are
    pruned, scored and quantized like any other; export writes them back as the MatMul and Add they were."""
    from onnx2torch.node_converters.binary_math_operations import OnnxBinaryMathOperation
    from onnx2torch.node_converters.matmul import OnnxMatMul

    attrs = {step[1]: step[2] for step in graph.steps if step[0] == "attr"}
    uses: dict[str, list[list[Any]]] = {}
    for step in graph.steps:
        for ref in _refs(step[3]) if step[3] else ():
            uses.setdefault(ref, []).append(step)

    def constant(spec: Any, rank: int) -> torch.Tensor | None:  # a float constant of `rank` that only one step reads
        if spec[0] != "ref" or spec[1] not in attrs or len(uses.get(spec[1], ())) != 1:
            return None
        value = _attribute(graph, attrs[spec[1]])
        return value if isinstance(value, nn.Parameter) and value.is_floating_point() and value.dim() == rank else None

    def bias_of(step: list[Any], weight: torch.Tensor) -> tuple[list[Any], str, torch.Tensor] | None:
        """The Add step after the MatMul `step` that adds a bias, its bias's step name and the bias, if there is one."""
        readers = uses.get(step[1], [])
        if len(readers) != 1 or readers[0][0] != "module":
            return None
        add = readers[0]
        layer = graph.get_submodule(add[2])
        if not (isinstance(layer, OnnxBinaryMathOperation) and layer.math_op_function is torch.add
                and layer.broadcast is None and layer.axis is None):
            return None
        first, second = add[3][1]
        other = second if first == ["ref", step[1]] else first
        bias = constant(other, 1)
        return (add, other[1], bias) if bias is not None and bias.shape[0] == weight.shape[1] else None

    dropped_steps: set[str] = set()
    dropped_constants: set[str] = set()
    for step in graph.steps:
        kind, name, target, args = step
        if kind != "module" or name in dropped_steps or not isinstance(graph.get_submodule(target), OnnxMatMul):
            continue
        x, w = args[1]
        weight = constant(w, 2)
        if weight is None:
            continue
        added = bias_of(step, weight)
        linear = nn.Linear(*weight.shape, bias=added is not None)
        with torch.no_grad():
            linear.weight.copy_(weight.T)
        step[3] = ["seq", [x]]
        setattr(graph, target, linear)
        dropped_steps.add(w[1])
        dropped_constants.add(attrs[w[1]])
        names = graph.tensors[target]  # [x, W, ->, product]
        if added is not None:
            add, bias_step, bias = added
            with torch.no_grad():
                linear.bias.copy_(bias)
            add_names = graph.tensors.pop(add[2])  # [a, b, ->, sum]
            bias_name = add_names[1] if add_names[0] == names[-1] else add_names[0]
            names = [*names[:2], bias_name, "->", names[-1], add_names[-1]]
            graph.tensors[target] = names
            delattr(graph, add[2])
            dropped_steps |= {add[1], bias_step}
            dropped_constants.add(attrs[bias_step])
            for later in graph.steps:  # the sum's readers now read the Linear
                if later[3]:
                    later[3] = _renamed(later[3], add[1], name)
    graph.steps = [step for step in graph.steps if step[1] not in dropped_steps]
    for target in sorted(dropped_constants):
        holder, _, leaf = target.rpartition(".")
        delattr(graph.get_submodule(holder) if holder else graph, leaf)


def _constants_as_parameters(module: nn.Module) -> None:
    """Float constants of more than one value (Paddle writes BatchNorm as Mul and Add of per-channel constants)
    become parameters, frozen: torch-pruning then cuts them with the channels they scale."""
    holder = getattr(module, "initializers", None)
    if holder is None:
        return
    for name, value in list(holder.named_buffers(recurse=False)):
        if value.is_floating_point() and value.numel() > 1:
            delattr(holder, name)
            holder.register_parameter(name, nn.Parameter(value.clone(), requires_grad=False))


def _spec(value: Any) -> Any:
    if isinstance(value, torch.fx.Node):
        return ["ref", value.name]
    if isinstance(value, list | tuple):
        return ["seq", [_spec(v) for v in value]]
    return ["const", value]


def _resolve(spec: list[Any], values: dict[str, Any]) -> Any:
    kind, value = spec
    if kind == "ref":
        return values[value]
    if kind == "seq":
        return tuple(_resolve(v, values) for v in value)
    return value


def _attribute(module: nn.Module, target: str) -> Any:
    for part in target.split("."):
        module = getattr(module, part)
    return module


def _array(tensor: torch.Tensor, name: str) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(tensor.detach().cpu().numpy(), name)


def source_proto(module: OnnxGraph) -> onnx.ModelProto:
    """The ONNX graph `module` was converted from, carrying `module`'s weights now: pruned layers with their smaller
    tensors (renamed LAYER.weight / LAYER.bias, as torch's exporter names them, so 4-bit records find them), folded
    BatchNorms as Identity, and every other constant as the module holds it; opset raised to 21 (4-bit weights)."""
    proto = onnx.load_from_string(module.source)
    graph = proto.graph
    inits = {i.name for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    attrs = {step[1]: step[2] for step in module.steps if step[0] == "attr"}
    put: dict[str, onnx.TensorProto] = {}
    for kind, _, target, args in module.steps:
        if kind != "module" or target not in module.tensors:
            continue
        names = module.tensors[target]
        inputs, outputs = names[:names.index("->")], names[names.index("->") + 1:]
        node, layer = producers[outputs[0]], module.get_submodule(target)
        specs = args[1] if args[0] == "seq" else [args]
        for spec, tensor_name in zip(specs, inputs, strict=False):  # constants the layer reads as inputs
            if spec[0] == "ref" and spec[1] in attrs and tensor_name in inits:
                put[tensor_name] = _array(_attribute(module, attrs[spec[1]]), tensor_name)
        if isinstance(layer, nn.Identity) and node.op_type == "BatchNormalization":  # folded into its conv
            node.op_type = "Identity"
            del node.input[1:]
            del node.attribute[:]
            continue
        for index, (suffix, value) in _layer_weights(layer, node).items():
            while len(node.input) <= index:
                node.input.append("")
            node.input[index] = f"{target}.{suffix}"
            put[node.input[index]] = _array(value, node.input[index])
        if node.op_type == "MatMul" and len(inputs) == 3:  # a Linear made of a MatMul and the Add of its bias
            add = next(n for n in graph.node if outputs[0] in n.input and inputs[2] in n.input)
            add.input[list(add.input).index(inputs[2])] = f"{target}.bias"
            put[f"{target}.bias"] = _array(layer.bias, f"{target}.bias")
    used = {name for n in graph.node for name in n.input}
    kept = [i for i in graph.initializer if i.name not in put and i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + list(put.values()))
    if max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) < OPSET:
        try:
            proto = onnx.version_converter.convert_version(proto, OPSET)
        except Exception as exc:  # the converter raises RuntimeError and its own errors for ops it cannot adapt
            raise UserError(f"the ONNX graph cannot be raised to opset {OPSET} (4-bit weights need it): "
                            f"{first_line(exc)}", "export the source model at a newer opset") from None
    return proto


def _set_int(node: onnx.NodeProto, name: str, value: int) -> None:
    for attribute in node.attribute:
        if attribute.name == name:
            node.attribute.remove(attribute)
            break
    node.attribute.append(helper.make_attribute(name, value))


def _layer_weights(layer: nn.Module, node: onnx.NodeProto) -> dict[int, tuple[str, torch.Tensor]]:
    """Which of `node`'s inputs carry `layer`'s parameters: input index -> (torch name, tensor in ONNX's layout)."""
    if isinstance(layer, nn.modules.conv._ConvNd):
        _set_int(node, "group", layer.groups)  # a pruned depthwise convolution has fewer groups
        out = {1: ("weight", layer.weight)}
        return {**out, 2: ("bias", layer.bias)} if layer.bias is not None else out
    if isinstance(layer, nn.Linear) and node.op_type == "Gemm":
        _set_int(node, "transB", 1)  # torch's (out, in) layout
        out = {1: ("weight", layer.weight)}
        return {**out, 2: ("bias", layer.bias)} if layer.bias is not None else out
    if isinstance(layer, nn.Linear):  # a MatMul that onnx2torch made a Linear of: ONNX holds (in, out)
        return {1: ("weight", layer.weight.T.contiguous())}
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        return {1: ("weight", layer.weight), 2: ("bias", layer.bias), 3: ("running_mean", layer.running_mean),
                4: ("running_var", layer.running_var)}
    return {}


def portable(module: nn.Module) -> nn.Module:
    """A copy of `module` in which the onnx2torch layers that hold a torch function hold its op type instead, so the
    copy unpickles with torch's weights_only loader; `restore` undoes it."""
    tables = _function_tables()
    copied = copy.deepcopy(module)
    for layer in copied.modules():
        for (cls, attr), table in tables.items():
            if type(layer).__name__ == cls and callable(getattr(layer, attr, None)):
                op = next(k for k, f in table.items() if f is getattr(layer, attr))
                setattr(layer, attr, op)
    return copied


def restore(module: nn.Module) -> nn.Module:
    """Put the torch functions back that `portable` replaced by their op types (in place); returns `module`."""
    if not converted_from_onnx(module):
        return module
    tables = _function_tables()
    for layer in module.modules():
        for (cls, attr), table in tables.items():
            if type(layer).__name__ == cls and isinstance(getattr(layer, attr, None), str):
                setattr(layer, attr, table[getattr(layer, attr)])
    return module


def _check_takes(value: onnx.ValueInfoProto, shape: tuple[int, ...], path: str | os.PathLike[str]) -> None:
    """The model's input must be a float tensor that takes a batch of the data's samples (`shape`): another element
    type, another rank or a fixed size that differs (a batch fixed at 1 above all) is a UserError naming both."""
    tensor = value.type.tensor_type
    if tensor.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
        kind = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
        raise UserError(f"{path}: input {value.name} holds {kind} values; compression scores models on float inputs",
                        "give a model whose input is a float tensor (images, features), or bench it as it is")
    dims = [d.dim_value if d.dim_value > 0 else (d.dim_param or "?") for d in tensor.shape.dim]
    fixed = [(i, d) for i, d in enumerate(dims) if isinstance(d, int)]
    if len(dims) != len(shape) or any(shape[i] != d for i, d in fixed):
        batch_fixed = len(dims) == len(shape) and fixed and fixed[0] == (0, 1) and all(
            shape[i] == d for i, d in fixed[1:])
        raise UserError(f"{path}: input {value.name} is {dims}; a batch of the data's samples is {list(shape)}",
                        "export the model with a dynamic batch (torch.onnx.export(..., dynamic_axes={'"
                        f"{value.name}': {{0: 'batch'}}}})" if batch_fixed else
                        "give data of the model's input shape (a .npz x of that layout, or a folder's size)")


def onnx_to_torch(path: str | os.PathLike[str], sample: np.ndarray) -> nn.Module:
    """The ONNX model at `path` as a torch module (an OnnxGraph), checked against ONNX Runtime on `sample` (a batch of
    the model's first input): ops without a converter, or outputs that differ by more than CONVERT_RTOL of their
    scale, are a UserError naming them."""
    import onnxruntime as ort
    from onnx2torch import convert

    model = read_onnx(path, checker=True)
    missing = _unsupported_ops(model)
    if missing:
        raise UserError(f"{path} uses ops that cannot be converted to torch: {', '.join(missing)}",
                        "export the model with standard ONNX ops (opset 9-17), or bench and emulate it as it is")
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise UserError(f"{path} takes several inputs", "compression takes models with one input (an image, a "
                        "sequence or a feature vector)")
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    _check_takes(inputs[0], sample.shape, path)
    try:  # the reference the conversion is checked against; a model that refuses the data's samples says so here
        session = ort.InferenceSession(model.SerializeToString(), session_options(fast=False),
                                       providers=["CPUExecutionProvider"])
        expected = session.run(None, {session.get_inputs()[0].name: sample})[0]
    except Exception as exc:  # onnxruntime's own exception types
        raise UserError(f"ONNX Runtime cannot run {path} on the data's samples of shape {list(sample.shape)}: "
                        f"{ort_message(exc)}", "give data of the size the model takes (a detector's sides are often "
                        "multiples of 32; a folder's size sets it)") from None
    _constants_as_initializers(model)
    try:
        _observed_ranks(model, sample)
        module = OnnxGraph(convert(model, attach_onnx_mapping=True), model).eval()
    except UserError:
        raise
    except Exception as exc:  # onnx2torch raises NotImplementedError, ValueError, KeyError for what it cannot map
        raise UserError(f"{path} cannot be converted to torch: {type(exc).__name__}: {first_line(exc)}",
                        "simplify the ONNX file (onnxsim) and try again, or bench and emulate it as it is") from None
    with torch.no_grad():
        got = module(torch.from_numpy(sample))
    got = (got[0] if isinstance(got, tuple) else got).numpy()
    diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if diff > CONVERT_RTOL * max(1.0, float(np.abs(expected).max())):
        raise UserError(f"{path} converted to torch computes other outputs than ONNX Runtime (largest difference "
                        f"{diff:.3g})", "report the model to Edgewise; bench and emulate it as it is meanwhile")
    return module
