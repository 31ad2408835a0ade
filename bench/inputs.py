"""What a model is fed when it is measured: one array per graph input, at shapes and dtypes the user can state.

A specification names, per input, a shape and dtype (`x:1x3x640x640`, `mask:1x128:bool`), a value
(`sr:int64=16000`, a scalar or a filled shape), or comes from a `.npz` with one array per input
name, or from a recipe's data (the model's first input). Dynamic dimensions must be given, or be
bound by another input that shares their name, or by `batch` for a leading one: nothing is set
to 1 behind the user's back. Inputs not given get their declared shape: the first input uniform
values in [0, 1) (data-like), every other input zeros (states, masks and counters start at zero).
The resolved specification travels with every result.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.base.npz import check_fits_in_memory
from edgewise.board.errors import UserError

# ONNX tensor element type -> numpy dtype, for the types users feed
ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
               10: "float16", 11: "float64", 12: "uint32", 13: "uint64"}
_SPEC = re.compile(r"^(?P<name>[^:=]+?)(?::(?P<shape>[0-9x]*|scalar))?(?::(?P<dtype>[a-z0-9]+))?(?:=(?P<value>.+))?$")


@dataclass(frozen=True)
class DeclaredInput:
    """A graph input as the model declares it: name, dtype and dims (int, or a str naming a dynamic dim)."""

    name: str
    dtype: str
    dims: tuple[int | str, ...]

    def shown(self) -> str:
        """The declared shape as users write it, dynamic dims by name (or '?')."""
        return "[" + ", ".join(str(d) for d in self.dims) + "]"


@dataclass(frozen=True)
class InputRequest:
    """What a user asked for one input: a shape, a dtype, a fill value (any may be missing)."""

    name: str
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    value: float | None = None


def _type_name(elem_type: int) -> str:
    import onnx

    try:
        return onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return str(elem_type)


def declared_inputs(graph: Any) -> list[DeclaredInput]:
    """The graph's real inputs (initializers listed as inputs by old exporters are left out), in order."""
    constants = {i.name for i in graph.initializer}
    out = []
    for value in graph.input:
        if value.name in constants:
            continue
        tensor = value.type.tensor_type
        dims: list[int | str] = []
        for i, dim in enumerate(tensor.shape.dim):
            # an unnamed unknown dim (0 or -1 as some exporters write it, or '?') gets a name unique to its place
            named = dim.dim_param if dim.dim_param not in ("", "?") else f"{value.name}[{i}]"
            dims.append(dim.dim_value if dim.dim_value > 0 else named)
        dtype = ONNX_DTYPES.get(tensor.elem_type, f"onnx type {_type_name(tensor.elem_type)}")
        out.append(DeclaredInput(value.name, dtype, tuple(dims)))
    return out


def parse_request(text: str) -> InputRequest:
    """One `--input` value: NAME:SHAPE[:DTYPE][=VALUE] or NAME[:DTYPE]=VALUE (SHAPE like 1x3x640x640, or scalar)."""
    match = _SPEC.match(text.strip())
    if not match:
        raise UserError(f"--input {text!r} is not NAME:SHAPE[:DTYPE][=VALUE]",
                        "write e.g. --input x:1x3x640x640, --input sr:int64=16000 or --input mask:1x128:bool")
    shape_text, dtype = match["shape"], match["dtype"]
    if shape_text and not re.fullmatch(r"scalar|\d+(x\d+)*", shape_text):
        raise UserError(f"--input {text!r}: {shape_text!r} is not a shape", "write sizes joined by x, e.g. 1x3x640x640")
    shape = None
    if shape_text:
        shape = () if shape_text == "scalar" else tuple(int(d) for d in shape_text.split("x"))
        if any(d < 1 for d in shape):
            raise UserError(f"--input {text!r}: dimensions must be at least 1", "give positive sizes, e.g. 1x3x640x640")
    if dtype is not None and dtype not in ONNX_DTYPES.values():
        raise UserError(f"--input {text!r}: unknown dtype {dtype!r}", f"use one of {', '.join(ONNX_DTYPES.values())}")
    value = None
    if match["value"] is not None:
        try:
            value = float(match["value"])
        except ValueError:
            raise UserError(f"--input {text!r}: the value {match['value']!r} is not a number",
                            "give a number, or put arrays in an .npz (one array per input name)") from None
    return InputRequest(match["name"], shape, dtype, value)


@dataclass
class Inputs:
    """The arrays a model is fed, and how each was chosen (recorded with every result)."""

    feeds: dict[str, np.ndarray]
    spec: list[dict[str, Any]]

    @property
    def batch(self) -> int:
        """The leading dimension of the first input (1 for a scalar)."""
        first = next(iter(self.feeds.values()))
        return int(first.shape[0]) if first.ndim else 1

    def text(self) -> str:
        """The specification in the form `--input` takes: name:shape:dtype per input."""
        return " ".join(f"{s['name']}:{'x'.join(map(str, s['shape'])) or 'scalar'}:{s['dtype']}" for s in self.spec)

    def dynamic_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shapes fed to inputs declared with a dynamic dimension (what an engine builder must be told; TensorRT
        refuses shapes for static inputs)."""
        return {s["name"]: tuple(s["shape"]) for s in self.spec if any(isinstance(d, str) for d in s["declared"])}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """The feeds as an .npz, one array per input name (what a memory child or a bundle loads)."""
        np.savez(path, **self.feeds)
        return Path(path)


def _fill(shape: tuple[int, ...], dtype: str, first: bool, value: float | None, rng: np.random.Generator
          ) -> tuple[np.ndarray, str]:
    if value is not None:
        return np.full(shape, value, dtype=dtype), f"filled with {value:g}"
    if first and np.issubdtype(np.dtype(dtype), np.floating):
        return rng.random(shape).astype(dtype), "uniform [0, 1)"
    return np.zeros(shape, dtype=dtype), "zeros"


def _check_all_bound(declared: list[DeclaredInput], arrays: dict[str, np.ndarray], bound: dict[str, int]) -> None:
    """One UserError naming every dynamic dimension of every input that nothing sizes, with the whole --input line
    to copy (a leading one as 1, each other as <name>), so one try tells a user all there is to state."""
    open_inputs = [d for d in declared if d.name not in arrays and any(
        isinstance(dim, str) and dim not in bound for dim in d.dims)]
    if not open_inputs:
        return
    named = "; ".join(f"{d.name} {d.shown()}: " + ", ".join(repr(dim) for dim in dict.fromkeys(
        dim for dim in d.dims if isinstance(dim, str) and dim not in bound)) for d in open_inputs)

    leading = {d.dims[0]: "1" for d in open_inputs if d.dims and isinstance(d.dims[0], str) and d.dims[0] not in bound}

    def size(dim: int | str) -> str:
        if isinstance(dim, int):
            return str(dim)
        return str(bound[dim]) if dim in bound else leading.get(dim, f"<{dim}>")

    line = " ".join(f"--input {d.name}:{'x'.join(size(dim) for dim in d.dims)}" for d in open_inputs)
    raise UserError(f"dynamic dimensions that nothing gives a size: {named}",
                    f"state them: {line}, each <...> the size you deploy with"
                    + (f" (--batch N sets {', '.join(map(repr, leading))})" if leading else ""))


def resolve_inputs(declared: list[DeclaredInput], requests: list[InputRequest] = (),
                   arrays: dict[str, np.ndarray] | None = None, batch: int | None = None, seed: int = 0) -> Inputs:
    """The arrays to feed: given arrays first, then requests, then the declared shapes with dims bound by name.

    A dynamic dim is bound by an array or a requested shape that has it (every input sharing its
    name then agrees), or by `batch` when it leads an input. One still unknown is a UserError
    naming the input, its dims and the option that sets it.
    """
    arrays = dict(arrays or {})
    names = [d.name for d in declared]
    by_name = {r.name: r for r in requests}
    for unknown in [*(n for n in by_name if n not in names), *(n for n in arrays if n not in names)]:
        raise UserError(f"the model has no input {unknown!r}", f"its inputs are {', '.join(names)}")
    bound: dict[str, int] = {}

    def bind(d: DeclaredInput, shape: tuple[int, ...], origin: str) -> None:
        if len(shape) != len(d.dims):
            raise UserError(f"input {d.name} has {len(d.dims)} dimensions {d.shown()}, and {origin} has "
                            f"{len(shape)} ({'x'.join(map(str, shape)) or 'scalar'})",
                            f"give {d.name} a shape of {len(d.dims)} dimensions")
        for dim, size in zip(d.dims, shape, strict=True):
            if isinstance(dim, int) and dim != size:
                raise UserError(f"input {d.name} is declared {d.shown()}, and {origin} gives "
                                f"{'x'.join(map(str, shape))}", f"keep the fixed dimensions of {d.name}")
            if isinstance(dim, str) and bound.setdefault(dim, size) != size:
                raise UserError(f"dimension {dim!r} is {bound[dim]} for one input and {size} for {d.name}",
                                "give shapes that agree on the dimensions they share")

    for d in declared:
        if d.name in arrays:
            bind(d, tuple(arrays[d.name].shape), "the given array")
        elif d.name in by_name and by_name[d.name].shape is not None:
            bind(d, by_name[d.name].shape, "--input")
    if batch is not None:
        for d in declared:
            if d.name not in arrays and d.dims and isinstance(d.dims[0], str):
                bound.setdefault(d.dims[0], batch)
    _check_all_bound(declared, arrays, bound)
    feeds, spec = {}, []
    rng = np.random.default_rng(seed)
    for i, d in enumerate(declared):
        request = by_name.get(d.name, InputRequest(d.name))
        dtype = request.dtype or d.dtype
        if d.name in arrays:
            feeds[d.name] = np.asarray(arrays[d.name]).astype(dtype, copy=False)
            source = "given"
        else:
            shape = [dim if isinstance(dim, int) else bound[dim] for dim in d.dims]
            feeds[d.name], source = _fill(tuple(shape), dtype, i == 0, request.value, rng)
        spec.append({"name": d.name, "shape": list(feeds[d.name].shape), "dtype": str(feeds[d.name].dtype),
                     "declared": [dim if isinstance(dim, int) else str(dim) for dim in d.dims], "values": source})
    return Inputs(feeds, spec)


def load_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Arrays by input name from an .npz (no pickles); a missing or unreadable file is a UserError."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"input file {file} does not exist", "give an .npz with one array per input name")
    try:
        check_fits_in_memory(file, role="the inputs")
        with np.load(file, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"cannot read {file} as an .npz: {exc}", "save it with numpy.savez(path, name=array, ...)"
                        ) from None
