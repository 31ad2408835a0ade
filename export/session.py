"""Opening ONNX Runtime sessions the right way for 4-bit models (the MatMulAddFusion trap avoided)."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import onnxruntime as ort

from export.errors import ExportError
from export.int4 import fold_conv_dequantize


def session_options(fast: bool = True, float_activations: bool = False, threads: int | None = None,
                    optimized_path: str | os.PathLike[str] | None = None) -> ort.SessionOptions:
    """Session options: with `fast`, MatMulAddFusion is disabled so 4-bit DequantizeLinear+MatMul fuse into MatMulNBits.

    ONNX Runtime's default fuses MatMul+Add into Gemm first, after which the 4-bit weights are
    dequantized on every run (several times slower than float32). MatMulNBits quantizes the
    activations to int8 by default (about 1e-2 difference); `float_activations` keeps them float
    (accuracy level 0, slower). Without `fast`, graph optimizations are off: the graph runs as
    written, the exact reference for verification. `open_session` also dequantizes 4-bit
    convolution weights once at load in the fast mode (ONNX Runtime has no 4-bit conv kernel).
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about serialised optimised graphs are not for our users
    if fast:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if float_activations:
            options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
    else:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    return options


def open_session(path: str | os.PathLike[str], fast: bool = True, float_activations: bool = False,
                 threads: int | None = None, optimized_path: str | os.PathLike[str] | None = None
                 ) -> ort.InferenceSession:
    """An ONNX Runtime CPU session for `path`, set up as `session_options` describes."""
    file = Path(path)
    if not file.is_file():
        raise ExportError(f"ONNX file {file} does not exist", "export the model first (edgewise export)")
    options = session_options(fast, float_activations, threads, optimized_path)
    disabled = ["MatMulAddFusion"] if fast else []
    try:
        model: str | bytes = str(file)
        if fast:
            proto = onnx.load(str(file))
            if any(n.op_type == "DequantizeLinear" for n in proto.graph.node):
                model = fold_conv_dequantize(proto).SerializeToString()
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=disabled)
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ExportError(f"ONNX Runtime cannot load {file}: {str(exc).splitlines()[0]}",
                          "the file is damaged or not ONNX; export it again") from None
