"""The converted graph: an ONNX file's layers as torch submodules and its steps as plain data, run in order.

onnx2torch builds a torch.fx.GraphModule; a GraphModule pickles generated Python code, which a model file must not
carry, so `OnnxGraph` keeps the same steps as lists of names and runs them itself. It also makes the graph what the
compression stages need: MatMul + Add by constants become nn.Linear, per-channel constants become frozen parameters
(torch-pruning cuts them with their channels), and a file whose batch is fixed runs a batch of samples in slices of
that size.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Iterator
from typing import Any

import onnx
import torch
from onnx import helper
from torch import nn

from edgewise.board.errors import UserError, first_line
from edgewise.board.session import batch_axis
from edgewise.export.onnx_export import OPSET
from edgewise.onnxin.handlers import weight_writer

CONVERT_RTOL = 1e-3
"""Largest difference, relative to the output's scale, between a converted module and ONNX Runtime: the conversion is
checked within it, and so is every export of the module (torch and ONNX Runtime order a graph's float sums
differently, and a converted graph's layer norms and long reductions show it)."""


class OnnxGraph(nn.Module):
    """A converted ONNX graph: its layers as submodules and its steps as plain data, run in order.

    Each step is [kind, name, target, args]: kind is input, attr (an initializer buffer), module
    (a submodule called with the args), item (one output of a multi-output step) or output; args
    are nested lists whose ["ref", name] entries stand for earlier steps' values.
    """

    def __init__(self, graph_module: torch.fx.GraphModule, source: onnx.ModelProto, fixed_batch: int | None = None
                 ) -> None:
        super().__init__()
        for name, child in graph_module.named_children():
            self.add_module(name, child)
        _constants_as_parameters(self)
        # the graph it came from, so export can write that graph again with this module's (pruned) weights
        self.source = source.SerializeToString()
        # the batch size the file's input is fixed at (a vendor file's 1), or None where the batch is free
        self.fixed_batch = fixed_batch
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
                args = _positional(graph_module.get_submodule(node.target), node.args, node.kwargs)
                self.steps.append(["module", node.name, node.target, _spec(args)])
            elif node.op == "call_function" and node.target is operator.getitem:
                self.steps.append(["item", node.name, None, _spec(node.args)])
            elif node.op == "output":
                self.steps.append(["output", node.name, None, _spec(node.args[0])])
            else:
                raise UserError(f"the converted graph has a step Edgewise cannot keep ({node.op} {node.target})",
                                "simplify the ONNX file (onnxsim) and try again")
        _matmuls_as_linear(self)
        _softmax_written_out(self)

    def forward(self, *inputs: torch.Tensor) -> Any:
        """Run the steps on `inputs` (the ONNX graph's inputs, in order); one output, or a tuple of several. A graph
        whose batch is fixed runs the samples in slices of that batch. Each output's samples are joined along its
        batch axis, which comes first (board.session.batch_axis: an LSTM head's (steps, batch, classes) becomes
        (batch, steps, classes)), as ONNX Runtime's runs of the file are read."""
        batch, n = self.fixed_batch, inputs[0].shape[0]
        step = n if batch is None else batch
        parts = [self._run(tuple(_filled(x[start:start + step], step) for x in inputs)) for start in range(0, n, step)]
        if isinstance(parts[0], tuple):
            return tuple(_joined(column, step, n) for column in zip(*parts, strict=True))
        return _joined(tuple(parts), step, n)

    verify_rtol = CONVERT_RTOL  # export.verify's tolerance for this module's exports

    def to_onnx_proto(self) -> onnx.ModelProto:
        """The source graph with this module's current weights (`source_proto`): what export writes for it."""
        return source_proto(self)

    def _run(self, inputs: tuple[torch.Tensor, ...]) -> Any:
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


def _joined(parts: tuple[Any, ...], step: int, samples: int) -> Any:
    """One output's slices of `step` samples joined along their batch axis, moved first and cut to `samples` (the
    first slice's value where it has no batch axis)."""
    first = parts[0]
    axis = batch_axis(tuple(first.shape), step) if isinstance(first, torch.Tensor) else None
    if axis is None:
        return first
    joined = torch.cat(parts, dim=axis) if len(parts) > 1 else first
    return joined.movedim(axis, 0)[:samples]


def _filled(x: torch.Tensor, batch: int) -> torch.Tensor:
    """`x` with its last sample repeated up to `batch` samples (the last slice of a fixed-batch run)."""
    short = batch - x.shape[0]
    return torch.cat([x, x[-1:].expand(short, *x.shape[1:])]) if short else x


def _positional(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """`args` and `kwargs` of a call to `module` as positional arguments only (None where an optional input is
    skipped): onnx2torch passes the inputs after a skipped one by keyword (Resize's scales after an empty roi), and a
    step keeps one list of arguments."""
    if not kwargs:
        return tuple(args)
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    names = list(inspect.signature(module.forward).parameters)
    last = max(names.index(k) for k in bound.arguments)
    return tuple(bound.arguments.get(name) for name in names[:last + 1])


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


def _softmax_written_out(graph: OnnxGraph) -> None:
    """Each softmax written out as Div(Exp(t), ReduceSum(Exp(t)) over one axis, reshaped or broadcast back) (what
    TensorFlow's and JAX's exports write) becomes an nn.Softmax of t (in place): criteria then score its input, as
    they do a Softmax layer's, where the written-out form saturates in float32 and gives relevance and gradients of
    exactly 0. The conversion's check against ONNX Runtime runs after this."""
    from onnx2torch.node_converters.binary_math_operations import _TORCH_FUNCTION_FROM_ONNX_TYPE as BINARY
    from onnx2torch.node_converters.expand import OnnxExpand
    from onnx2torch.node_converters.functions import OnnxFunction
    from onnx2torch.node_converters.reduce import OnnxReduceSumStaticAxes
    from onnx2torch.node_converters.reshape import OnnxReshape

    steps = {step[1]: step for step in graph.steps}

    def producer(spec: Any) -> tuple[list[Any], nn.Module] | None:
        step = steps.get(spec[1]) if spec[0] == "ref" else None
        return (step, graph.get_submodule(step[2])) if step is not None and step[0] == "module" else None

    def summed(spec: Any) -> tuple[Any, int] | None:
        """What the denominator `spec` sums and over which axis, through reshapes and broadcasts of the sum."""
        found = producer(spec)
        while found is not None and isinstance(found[1], OnnxReshape | OnnxExpand):
            found = producer(found[0][3][1][0])
        if found is None or not isinstance(found[1], OnnxReduceSumStaticAxes) or found[1]._axes is None or \
                len(found[1]._axes) != 1:
            return None
        return found[0][3][1][0], found[1]._axes[0]

    for step in graph.steps:
        if step[0] != "module" or getattr(graph.get_submodule(step[2]), "math_op_function", None) is not BINARY["Div"]:
            continue
        numerator, denominator = step[3][1]
        exp, total = producer(numerator), summed(denominator)
        if exp is None or total is None or not isinstance(exp[1], OnnxFunction) or exp[1].function is not torch.exp \
                or total[0] != numerator:
            continue
        setattr(graph, step[2], nn.Softmax(dim=total[1]))
        graph.tensors.pop(step[2], None)
        step[3] = ["seq", [exp[0][3][1][0]]]


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
    # the source's shape annotations hold its unpruned widths, and ONNX Runtime trusts them over the weights
    del graph.value_info[:]
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
        weighted, prefix = _weighted(layer, target)
        for index, (suffix, value) in _layer_weights(weighted, node).items():
            while len(node.input) <= index:
                node.input.append("")
            node.input[index] = f"{prefix}.{suffix}"
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


def _weighted(layer: nn.Module, target: str) -> tuple[nn.Module, str]:
    """The module that holds a node's weights and its name: onnx2torch converts a Conv with unequal pads into
    Sequential(pad, Conv), whose convolution is its last child (`target.1`); any other layer holds them itself."""
    if isinstance(layer, nn.Sequential) and len(layer) > 1 and isinstance(layer[-1], nn.modules.conv._ConvNd):
        return layer[-1], f"{target}.{len(layer) - 1}"
    return layer, target


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
    writer = weight_writer(layer)
    return writer(layer, node) if writer is not None else {}
