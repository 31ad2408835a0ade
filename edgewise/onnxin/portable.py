"""A converted graph as a model file holds it: onnx2torch's layers that keep a torch function from one of its tables
keep the op's name instead (torch's weights_only loader unpickles names, not functions), restored on load."""

from __future__ import annotations

import copy
import importlib
from typing import Any

from torch import nn

from edgewise.compress.layers import converted_from_onnx

# onnx2torch modules that hold a torch function picked by their op type from one of its tables: a model file keeps
# the op type (a string) instead, and the function is looked up again when it loads
_FUNCTION_ATTRIBUTES = (
    ("binary_math_operations", "OnnxBinaryMathOperation", "math_op_function"),
    ("reduce", "OnnxReduceStaticAxes", "math_op_function"),
    ("reduce", "OnnxReduceSymbolicAxes", "math_op_function"),
    ("functions", "OnnxFunction", "function"),
)


def _function_tables() -> dict[tuple[str, str], dict[str, Any]]:
    tables = {}
    for module_name, cls, attr in _FUNCTION_ATTRIBUTES:
        module = importlib.import_module(f"onnx2torch.node_converters.{module_name}")
        tables[(cls, attr)] = module._TORCH_FUNCTION_FROM_ONNX_TYPE
    return tables


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


