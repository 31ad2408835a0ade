"""The one way Edgewise opens an ONNX model for inference: the session we ship, wherever a model runs.

Latency, memory, energy, scoring, bundle verification and a bundle's run.py on a board all open
their model here, so every figure is taken on the same optimized graph. Part of the board package
(edgewise.board), which deploy bundles ship whole: it needs only the standard library, numpy and
onnxruntime (and onnx to pre-dequantize 4-bit convolution weights).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .errors import UserError


class SessionError(UserError):
    """A model file ONNX Runtime cannot open."""


# ONNX Runtime fuses MatMul+Add into Gemm first, after which 4-bit DequantizeLinear weights are
# dequantized on every run; without this fusion DequantizeLinear+MatMul become MatMulNBits
DISABLED_OPTIMIZERS = ("MatMulAddFusion",)


# ONNX Runtime's execution providers in the order a GPU machine prefers them; CPU always last
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def device_providers(requested: str | list[str] | None = "auto") -> list[str]:
    """The execution providers to open a session with: "auto" (or None) takes TensorRT, CUDA and CPU in that order
    as this onnxruntime build has them; a comma-separated string or a list names them (an unknown one is a
    SessionError that lists what this build has)."""
    available = ort.get_available_providers()
    if requested in (None, "auto"):
        return [p for p in PREFERRED_PROVIDERS if p in available]
    names = requested.split(",") if isinstance(requested, str) else list(requested)
    missing = [n for n in names if n not in available]
    if missing:
        raise SessionError(f"this onnxruntime has no {', '.join(missing)}",
                           f"choose among {', '.join(available)} (onnxruntime-gpu brings CUDA and TensorRT)")
    return names


def session_options(fast: bool = True, float_activations: bool = False, threads: int | None = None,
                    optimized_path: str | os.PathLike[str] | None = None, arena: bool = True,
                    profile_prefix: str | os.PathLike[str] | None = None, log_severity: int = 3
                    ) -> ort.SessionOptions:
    """Session options, for every ONNX Runtime session the kit makes: `fast` is the graph we ship (all
    optimizations), else the graph as written (the reference, calibration and counting passes).

    MatMulNBits quantizes the activations to int8 by default (about 1e-2 difference);
    `float_activations` keeps them float (accuracy level 0, slower). `threads` sets the intra-op
    thread count (None: ONNX Runtime's own choice). `optimized_path` saves the optimized graph
    (also when $EDGEWISE_OPTIMIZED_GRAPHS names a folder: every session writes its graph there,
    to compare what each measurement ran). `arena` is ONNX Runtime's CPU memory arena (it
    inflates peak memory; on by default). `profile_prefix` turns ONNX Runtime's profiler on, its
    JSON written there. `log_severity` silences ONNX Runtime's log below it (3: errors only; its
    warnings about serialised optimised graphs are not for our users; 4: nothing, where its error
    becomes our one-line error).
    """
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = arena
    options.log_severity_level = log_severity
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    if fast:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if float_activations:
            options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
    else:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    folder = os.environ.get("EDGEWISE_OPTIMIZED_GRAPHS")
    if optimized_path is None and folder and fast:
        optimized_path = Path(folder) / f"session-{os.getpid()}-{id(options)}.onnx"
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    return options


INT8_KERNEL_OPS = ("Conv", "Gemm", "MatMul")


def node_consumers(graph: Any) -> dict[str, list[Any]]:
    """Per tensor name, the nodes of `graph` (an onnx GraphProto) that read it."""
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def _quantized_activations(graph: Any) -> set[str]:
    """Names of the nodes (Conv, Gemm, MatMul) whose input is a DequantizeLinear output: layers of a W4A8 graph, which
    ONNX Runtime fuses into its int8 kernels (QLinearConv, QGemm) when their weights are int8 too."""
    producers = {o: n for n in graph.node for o in n.output}
    return {n.name or n.output[0] for n in graph.node if n.op_type in INT8_KERNEL_OPS and n.input
            and getattr(producers.get(n.input[0]), "op_type", "") == "DequantizeLinear"}


def widen_w4a8(model: Any) -> Any:
    """Turn each 4-bit weight that a W4A8 layer dequantizes (see _quantized_activations) into INT8 of the same values,
    zero point 0: ONNX Runtime's and TensorRT's int8 kernels take no 4-bit weights. `model` is an onnx ModelProto,
    changed in place and returned."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers, layers = node_consumers(graph), _quantized_activations(graph)
    four_bit = (TensorProto.INT4, TensorProto.UINT4)
    widened: dict[str, Any] = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits or \
                inits[node.input[0]].data_type not in four_bit:
            continue
        users = consumers.get(node.output[0], [])
        if not users or not all((u.name or u.output[0]) in layers for u in users):
            continue
        q = numpy_helper.to_array(inits[node.input[0]]).astype(np.int16)
        zero = (numpy_helper.to_array(inits[node.input[2]]).astype(np.int16)
                if len(node.input) > 2 and node.input[2] else np.int16(0))
        if np.ndim(zero) == 1 and q.ndim > 1:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            shape[axis] = -1
            zero = zero.reshape(shape)
        name = f"{node.input[0]}_int8"
        widened[name] = numpy_helper.from_array((q - zero).astype(np.int8), name)
        zero_name = f"{name}_zero_point"
        scale_shape = numpy_helper.to_array(inits[node.input[1]]).shape
        widened[zero_name] = numpy_helper.from_array(np.zeros(scale_shape, dtype=np.int8), zero_name)
        del node.input[2:]
        node.input[0] = name
        node.input.append(zero_name)
    graph.initializer.extend(widened.values())
    return model


# the layers ONNX Runtime has no 4-bit kernel for (only MatMul has one, MatMulNBits): their 4-bit weights are
# dequantized once at load, or they would be on every run
DEQUANTIZED_AT_LOAD = ("Conv", "ConvTranspose", "Gemm", "LSTM", "GRU", "RNN")


def fold_dequantized_weights(model: Any, ops: tuple[str, ...] | None = DEQUANTIZED_AT_LOAD) -> Any:
    """Replace every DequantizeLinear that feeds only `ops` nodes (None: any node) by its float32 result (done once,
    at load).

    ONNX Runtime has no 4-bit convolution, Gemm or recurrent kernel and does not constant-fold
    DequantizeLinear (it keeps Q/DQ groups for its fusions), so without this the weights would be
    dequantized on every run. MatMul's DequantizeLinear stay for the MatMulNBits fusion (by
    default), and so do the weights of layers whose activations are quantized too (W4A8:
    QLinearConv, QGemm). `model` is an onnx ModelProto, changed in place and returned.
    """
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers, int8_layers = node_consumers(graph), _quantized_activations(graph)
    keep, folded = [], []
    for node in graph.node:
        users = consumers.get(node.output[0], []) if node.op_type == "DequantizeLinear" else []
        if users and all((ops is None or c.op_type in ops) and (c.name or c.output[0]) not in int8_layers
                         for c in users) and \
                all(i in inits for i in node.input if i):
            q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
            scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
            zero = (numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
                    if len(node.input) > 2 and node.input[2] else np.float32(0.0))
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            block = next((a.i for a in node.attribute if a.name == "block_size"), 0)
            if block:  # a blocked scale: one value per block of weights along the axis (this file ships alone)
                kept = np.arange(q.shape[axis])
                scale = np.take(np.repeat(scale, block, axis=axis), kept, axis=axis)
                zero = np.take(np.repeat(zero, block, axis=axis), kept, axis=axis) if np.ndim(zero) else zero
            elif np.ndim(scale) == 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
                zero = np.reshape(zero, shape) if np.ndim(zero) else zero
            try:
                weight = ((q - zero) * scale).astype(np.float32)
            except ValueError:  # a scale laid out some other way: ONNX Runtime dequantizes it as the file says
                weight = None
            if weight is not None and weight.shape == q.shape:
                folded.append(numpy_helper.from_array(weight, node.output[0]))
                continue
        keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    graph.initializer.extend(folded)
    return model


def shipped_model(path: str | os.PathLike[str]) -> tuple[str | bytes, list[str]]:
    """What the fast session loads and the optimizers it leaves off: the file itself with ONNX Runtime's defaults, or,
    for a graph with DequantizeLinear weights, that graph with 4-bit weights of W4A8 layers widened to INT8 (for
    QLinearConv and QGemm), other 4-bit weights of convolutions, Gemm and recurrent layers pre-dequantized, and
    MatMulAddFusion off (so the 4-bit MatMul layers become MatMulNBits)."""
    import onnx

    proto = onnx.load(str(path))
    if not any(n.op_type == "DequantizeLinear" for n in proto.graph.node):
        return str(path), []
    return fold_dequantized_weights(widen_w4a8(proto)).SerializeToString(), list(DISABLED_OPTIMIZERS)


def open_session(path: str | os.PathLike[str], fast: bool = True, float_activations: bool = False,
                 threads: int | None = None, optimized_path: str | os.PathLike[str] | None = None,
                 arena: bool = True, providers: list[str] | None = None) -> ort.InferenceSession:
    """An ONNX Runtime session for `path`: the shipped graph (`fast`) or the graph as written, on the CPU unless
    `providers` (device_providers) names others.

    The shipped graph has every ONNX Runtime optimization; a graph with 4-bit weights also has the
    weights of its convolutions, Gemm and recurrent layers dequantized once at load and
    MatMulAddFusion off, so its MatMul layers run as MatMulNBits (`shipped_model`). A file that
    does not exist or that ONNX Runtime cannot load raises SessionError.
    """
    file = Path(path)
    if not file.is_file():
        raise SessionError(f"ONNX file {file} does not exist", "export the model first (edgewise export)")
    options = session_options(fast, float_activations, threads, optimized_path, arena)
    try:
        model, disabled = shipped_model(file) if fast else (str(file), [])
        return ort.InferenceSession(model, options, providers=providers or ["CPUExecutionProvider"],
                                    disabled_optimizers=disabled)
    except Exception as exc:  # onnx and onnxruntime raise their own exception types for bad files
        raise SessionError(f"ONNX Runtime cannot load {file}: {str(exc).splitlines()[0]}",
                           "the file is damaged or not ONNX; export it again") from None


SCORING_BATCH = 256
"""Samples a session runs at once where the caller does not say (scoring, labelling by a source file)."""


def session_runner(session: ort.InferenceSession, batch: int = SCORING_BATCH) -> Callable[[np.ndarray], np.ndarray]:
    """A function running `session` on an array of samples `batch` at a time (`run_samples`), returning the first
    output."""
    return lambda x: run_samples(session, x, batch)[0]


def fixed_batch(session: ort.InferenceSession) -> int | None:
    """The batch size the session's first input is fixed at (a vendor file's 1), or None where it is free."""
    shape = session.get_inputs()[0].shape
    return shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None


def batch_axis(shape: tuple[int, ...], samples: int) -> int | None:
    """The axis of an output of `shape` that holds the `samples` of a run: the first, or else the first whose size is
    the sample count (an LSTM or CTC head's (steps, batch, classes), as PyTorch writes it); None when none is (a
    scalar, a shape)."""
    if shape and shape[0] == samples:
        return 0
    return next((axis for axis, size in enumerate(shape) if size == samples), None)


def run_samples(session: ort.InferenceSession, x: np.ndarray, batch: int | None = None) -> list[np.ndarray]:
    """Every output of `session` on the samples `x` (its first input, in that input's element type): all at once, or
    `batch` at a time when given, and always in slices of the input's fixed batch where it has one (the last slice
    filled up with its last sample); each output's samples are joined along its batch axis (`batch_axis`), which
    comes first in what is returned, and cut to the samples given."""
    first = session.get_inputs()[0]
    element = first.type.removeprefix("tensor(").removesuffix(")")  # ONNX Runtime writes e.g. tensor(int32)
    x = np.ascontiguousarray(x, dtype={"float": "float32", "double": "float64"}.get(element, element))
    fixed = fixed_batch(session)
    step = fixed or batch or len(x)
    parts = []
    for start in range(0, len(x), step):
        part = x[start:start + step]
        if fixed and len(part) < step:
            part = np.concatenate([part, np.repeat(part[-1:], step - len(part), axis=0)])
        parts.append(session.run(None, {first.name: part}))
    return [_joined(column, step, len(x)) for column in zip(*parts, strict=True)]


def _joined(parts: tuple[np.ndarray, ...], step: int, samples: int) -> np.ndarray:
    """One output's slices (of `step` samples each) joined along their batch axis, moved first and cut to the samples
    given; an output without one (a scalar, a shape's element, an intermediate tensor without a batch) is the first
    slice's."""
    axis = batch_axis(np.shape(parts[0]), step)
    if axis is None:
        return parts[0]
    joined = np.concatenate(parts, axis=axis) if len(parts) > 1 else parts[0]
    return np.moveaxis(joined, axis, 0)[:samples]
