"""A converted graph as a model file holds it: onnx2torch's layers that keep a torch function from one of its tables
keep a name for it instead (torch's weights_only loader unpickles names, not functions), restored on load."""

from __future__ import annotations

import copy
import importlib
from typing import Any

import torch
from torch import nn

from edgewise.compress.layers import converted_from_onnx

# onnx2torch's tables from op type to the torch function a layer of that op calls (module -> table name)
_TABLES = {"arg_extrema": "_TORCH_FUNCTION_FROM_ONNX_TYPE", "binary_math_operations": "_TORCH_FUNCTION_FROM_ONNX_TYPE",
           "comparisons": "_TORCH_FUNCTION_FROM_ONNX_TYPE", "functions": "_TORCH_FUNCTION_FROM_ONNX_TYPE",
           "logical": "_TORCH_FUNCTION_FROM_ONNX_TYPE", "reduce": "_TORCH_FUNCTION_FROM_ONNX_TYPE",
           "roundings": "_TORCH_ROUND_FROM_ONNX_TYPE"}
_MARK = "onnx2torch-function:"  # a portable attribute: the mark, the table's module and the op type


def _functions() -> dict[str, Any]:
    """Every function of the tables by its portable name (mark, table module, op type)."""
    out = {}
    for module_name, table in _TABLES.items():
        module = importlib.import_module(f"onnx2torch.node_converters.{module_name}")
        out.update({f"{_MARK}{module_name}:{op}": f for op, f in getattr(module, table).items()})
    return out


def _onnx2torch_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if type(m).__module__.startswith("onnx2torch.")]


def _portable_name(value: Any, names: dict[int, str]) -> str | None:
    """The portable name of a function an onnx2torch layer holds: its op table's, else torch's own name for it."""
    if id(value) in names:
        return names[id(value)]
    name = getattr(value, "__name__", None)
    return f"{_MARK}torch:{name}" if name and getattr(torch, name, None) is value else None


def portable(module: nn.Module) -> nn.Module:
    """A copy of `module` in which the onnx2torch layers that hold a torch function (from one of onnx2torch's op
    tables, or torch's own, as Min and Max hold) hold its portable name instead, so the copy unpickles with torch's
    weights_only loader; `restore` undoes it."""
    names = {id(f): name for name, f in reversed(_functions().items())}
    copied = copy.deepcopy(module)
    for layer in _onnx2torch_layers(copied):
        for attr, value in list(vars(layer).items()):
            name = _portable_name(value, names) if callable(value) and not isinstance(value, nn.Module | type) \
                else None
            if name is not None:
                setattr(layer, attr, name)
    return copied


def restore(module: nn.Module) -> nn.Module:
    """Put the torch functions back that `portable` replaced by their portable names (in place); returns `module`."""
    if not converted_from_onnx(module):
        return module
    functions = _functions()
    for layer in _onnx2torch_layers(module):
        for attr, value in list(vars(layer).items()):
            if isinstance(value, str) and value.startswith(_MARK):
                table, _, op = value.removeprefix(_MARK).partition(":")
                setattr(layer, attr, getattr(torch, op) if table == "torch" else functions[value])
    return module
