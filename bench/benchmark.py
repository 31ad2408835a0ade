"""Benchmarking a model file or a deploy bundle on a target: `edgewise bench` and `edgewise.bench(...)`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgewise.base.paths import MODEL_OR_BUNDLE, existing
from edgewise.bench.counts import count_onnx
from edgewise.bench.inputs import Inputs, declared_inputs, load_arrays, parse_request, resolve_inputs
from edgewise.bench.target_bench import BenchConfig, bench_model
from edgewise.board.errors import UserError
from edgewise.board.manifest import BundleError, check_files, read_manifest
from edgewise.export.integrity import check_weights
from edgewise.export.onnx_file import read_onnx
from edgewise.runtime import IntegerMLP
from edgewise.targets import load_target


def _model(path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """The ONNX file to run, and the arrays a bundle ships as its probe (one sample of its input)."""
    if path.is_dir():

        if not (path / "manifest.json").is_file():
            raise UserError(f"{path} is a folder without manifest.json", "give an .onnx file or a deploy bundle")
        try:
            entry = read_manifest(path)
            changed = check_files(path, entry)
        except BundleError as exc:
            raise UserError(f"bundle {path}: {exc}", "write the bundle again with `edgewise deploy`") from None
        if changed:
            raise UserError(f"bundle {path}: files changed or missing since it was written: {', '.join(changed)}",
                            "copy the bundle again, or write it again with `edgewise deploy`")
        if not entry["inputs"] or not isinstance(entry["inputs"][0], dict) or "name" not in entry["inputs"][0]:
            raise UserError(f"bundle {path}: its manifest names no model input", "write the bundle again")
        model = path / entry["model"]
        return model, {entry["inputs"][0]["name"]: np.load(path / entry["probe"]["input"])[:1]}
    existing(path, MODEL_OR_BUNDLE)
    if path.suffix != ".onnx" or not path.is_file():
        raise UserError(f"{path} is not an ONNX file or a bundle", "export the model first (edgewise export)")
    return path, {}


def model_inputs(path: str | os.PathLike[str], requests: Sequence[str] = (),
                 arrays: dict[str, np.ndarray] | None = None, batch: int | None = None,
                 sample: np.ndarray | None = None) -> Inputs:
    """The inputs to feed the ONNX model at `path`: `requests` in `--input` form, given arrays, `batch`, and a data
    `sample` for the first input (unless a request or an array already gives that input)."""
    proto = read_onnx(path, external_data=False)
    check_weights(proto, path)
    graph = proto.graph
    declared = declared_inputs(graph)
    unfed = [d for d in declared if d.dtype.startswith("onnx type")]
    if unfed:
        named = ", ".join(f"{d.name} ({d.dtype.removeprefix('onnx type ')})" for d in unfed)
        raise UserError(f"{path}: inputs {named} are not numeric tensors, which the benchmark cannot fill",
                        "bench a graph whose inputs are numbers (strings tokenized before the model, as it runs in "
                        "production)")
    parsed = [parse_request(r) for r in requests]
    arrays = dict(arrays or {})
    if sample is not None and declared and declared[0].name not in {r.name for r in parsed} | set(arrays):
        arrays[declared[0].name] = sample
    return resolve_inputs(declared, parsed, arrays, batch)


def _emulated(path: Path, inputs: Inputs, target: str) -> dict[str, Any] | None:
    """The total emulated costs of a 4-bit ONNX network on an emulated target; None when it does not fit the kernel.

    The inputs only set activation scales: the emulated costs depend on the weights alone.
    """
    from edgewise.export.onnx_records import records_from_onnx

    first = next(iter(inputs.feeds.values()))
    try:
        mlp = IntegerMLP.from_records(records_from_onnx(path), first)
    except UserError:
        return None
    return mlp.costs(target)["total"]


def _torch_onnx(module: Any, requests: Sequence[str], arrays: dict[str, np.ndarray], scratch: Path
                ) -> tuple[Path, dict[str, np.ndarray]]:
    """A torch module given to benchmark, exported to ONNX in `scratch` at the one input shape stated for it (under
    any name), and that input under the exported graph's name."""
    import torch

    from edgewise.export.onnx_export import to_onnx

    shapes = [r.shape for r in map(parse_request, requests) if r.shape is not None]
    given = list(arrays.values())
    if len(shapes) + len(given) != 1:
        raise UserError("a torch model is benchmarked at one stated input shape",
                        "give inputs=['x:1x3x224x224'] (or one array) for its input")
    example = torch.from_numpy(given[0]) if given else torch.rand(shapes[0])
    path = to_onnx(module, example, scratch / f"{type(module).__name__}.onnx").path
    first = declared_inputs(onnx.load(str(path), load_external_data=False).graph)[0].name
    return path, {first: example.numpy()}


def benchmark(model: Any, target: str = "x86-host", config: BenchConfig | None = None,
              board_result: str | os.PathLike[str] | None = None, inputs: Sequence[str] = (),
              arrays: str | os.PathLike[str] | dict[str, np.ndarray] | None = None, batch: int | None = None,
              precision: str | None = None) -> dict[str, Any]:
    """Latency, memory and energy of an ONNX file, deploy bundle or torch module on `target`, each with how it was
    obtained.

    The model is fed what `inputs` states (`--input` form: "x:1x3x640x640", "sr:int64=16000"),
    `arrays` (an .npz or a dict, one array per input name) and `batch` (a leading dynamic
    dimension); a bundle brings its probe. A torch module is exported to ONNX at its one stated
    input shape, and on an NVIDIA GPU without onnxruntime-gpu it runs as itself on CUDA. On this
    machine's own target the figures are measured; on an emulated accelerator a 4-bit MLP runs
    through its cost model; a board not at hand gets the calibrated estimate at the engine
    `precision` (fp16 by default), or its own measurement when `board_result` (a bundle's
    result.json) is given. Returns the record (JSON-able), with the inputs and the model's counts
    at them; a target with no figure at all here is a UserError.
    """
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise UserError(f"batch {batch!r} is not a batch size", "give a batch of 1 or more (--batch)")
    kind = load_target(target)["kind"]  # an unknown target fails before any work
    config = config or BenchConfig()
    given = load_arrays(arrays) if isinstance(arrays, str | os.PathLike) else dict(arrays or {})
    with tempfile.TemporaryDirectory() as scratch:
        module = None if isinstance(model, str | os.PathLike) else model
        if module is None:
            path, shipped = _model(Path(model))
            fed = model_inputs(path, inputs, {**shipped, **given}, batch)
        else:
            path, example = _torch_onnx(module, inputs, given, Path(scratch))
            fed = model_inputs(path, (), example)
        counts = count_onnx(path, fed)
        record = bench_model(path, fed, target, config, counts=counts, precision=precision,
                             board_result=board_result, torch_model=module,
                             emulated=_emulated(path, fed, target) if kind == "emulated" else None)
    if module is not None:
        record["model_file"] = f"torch module {type(module).__name__} (exported to ONNX to count and run)"
    if all(record[part]["kind"] == "unavailable" for part in ("latency", "memory", "energy")):
        raise UserError(f"target {target} is not available here: {record['latency']['reason']}",
                        "pick a target from `edgewise targets` that runs, emulates or estimates here")
    return {**record, "counts": counts.to_json(), "macs": counts.macs, "weight_bytes": counts.weight_bytes}
