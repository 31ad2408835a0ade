"""TensorRT: engines from ONNX files where TensorRT and a CUDA device exist, and trtexec commands for boards.

Engines are specific to the GPU and TensorRT version they are built on, so the normal flow for a
board is to ship the ONNX file and build there. `trtexec_command` writes that command;
`run_trtexec` runs it and reads its report (edgewise.board.trtexec_report, which bundles ship too).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgewise.board.trtexec_report import TrtexecError
from edgewise.board.trtexec_report import run_trtexec as _run_trtexec
from edgewise.export.errors import ExportError

PRECISIONS = ("fp32", "fp16", "int8", "int4")


def tensorrt_status() -> tuple[bool, str]:
    """Whether TensorRT can build engines here, and if not, why (in one sentence)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False, ("the tensorrt Python package is not installed (it comes from NVIDIA's package index or "
                       "JetPack; pip install 'edgewise[tensorrt]' where that index is reachable)")
    try:
        import torch

        if not torch.cuda.is_available():
            return False, "tensorrt is installed but no CUDA device is visible"
    except ImportError:
        return False, "no CUDA runtime to check for a device"
    return True, "TensorRT and a CUDA device are available"


def _shape(dims: Sequence[int]) -> str:
    return "x".join(str(d) for d in dims)


def trtexec_command(onnx_path: str, engine_path: str, input_name: str | None = None,
                    input_shape: Sequence[int] | None = None, precision: str = "fp16", max_batch: int = 64,
                    opt_batch: int = 1, workspace_mib: int = 1024, warmup_ms: int = 200, iterations: int = 100,
                    duration_s: float = 3.0, shapes: dict[str, Sequence[int]] | None = None) -> list[str]:
    """The trtexec command line that builds the engine from `onnx_path` and times it.

    With `input_name` and `input_shape` (one sample's shape, without the batch) the engine gets a
    dynamic batch profile (1 to `max_batch`, tuned for `opt_batch`); with `shapes` (input name ->
    full shape) it is built and timed at those shapes; with neither, at the model's own static
    shapes. Precisions: fp32, fp16, int8 (with fp16 fallback; calibration-free, so use it only
    with Q/DQ models or for speed estimates), int4 (weight-only: the file's 4-bit
    DequantizeLinear types are kept with --stronglyTyped).
    """
    if precision not in PRECISIONS:
        raise ExportError(f"unknown TensorRT precision {precision!r}", f"use one of {', '.join(PRECISIONS)}")
    command = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}",
               f"--memPoolSize=workspace:{workspace_mib}M"]
    if input_name is not None and input_shape is not None:
        command += [f"--minShapes={input_name}:{_shape([1, *input_shape])}",
                    f"--optShapes={input_name}:{_shape([opt_batch, *input_shape])}",
                    f"--maxShapes={input_name}:{_shape([max_batch, *input_shape])}"]
    elif shapes:
        command.append("--shapes=" + ",".join(f"{name}:{_shape(shape)}" for name, shape in shapes.items()))
    command += [f"--warmUp={warmup_ms}", f"--iterations={iterations}", f"--duration={duration_s:g}"]
    command += {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8", "--fp16"], "int4": ["--stronglyTyped"]}[precision]
    return command


def run_trtexec(command: Sequence[str], cwd: str | os.PathLike[str] | None = None,
                timeout_s: float = 3600) -> dict[str, Any]:
    """Run a trtexec command and return its parsed report; a missing trtexec, a failed build or a report without
    figures is an ExportError."""
    executable = shutil.which(command[0])
    if executable is None:
        raise ExportError("trtexec is not on PATH",
                          "install TensorRT (JetPack: /usr/src/tensorrt/bin) or add it to PATH")
    try:
        report = _run_trtexec([executable, *command[1:]], cwd, timeout_s)
    except TrtexecError as exc:
        raise ExportError(str(exc), "read trtexec's output (run the command by hand)") from None
    report["command"] = list(command)
    return report


def to_tensorrt(onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str], input_shape: Sequence[int],
                 precision: str = "fp16", max_batch: int = 64, workspace_mib: int = 1024) -> dict[str, Any]:
    """Build a serialized TensorRT engine with the Python API (needs tensorrt and a CUDA device); a W4A8 file is
    built as its INT8 copy (see edgewise.export.w4a8.for_tensorrt)."""
    available, reason = tensorrt_status()
    if not available:
        raise ExportError(f"TensorRT is unavailable here: {reason}",
                          "build on the board: run the bundle's run.py there, or the trtexec command it holds")
    import onnx
    import tensorrt as trt

    from edgewise.export.w4a8 import for_tensorrt, is_w4a8

    data = Path(onnx_path).read_bytes()
    proto = onnx.load_from_string(data)
    if is_w4a8(proto):  # explicit quantization: INT8 weights and Q/DQ activations, built with INT8 on
        widened, _, why = for_tensorrt(proto, [])
        if widened is None:
            raise ExportError(f"no TensorRT engine for {onnx_path}: {why}", "export W4A8 with int8 activations")
        data, precision = widened.SerializeToString(), "int8"
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if precision == "int4" and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors}", "check the operators TensorRT supports")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    profile.set_shape(name, (1, *input_shape), (1, *input_shape), (max_batch, *input_shape))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT could not build the engine", "see TensorRT's log above")
    Path(engine_path).write_bytes(bytes(serialized))
    return {"engine": str(engine_path), "bytes": Path(engine_path).stat().st_size, "precision": precision,
            "tensorrt": trt.__version__}
