"""Export: ONNX with pruned shapes and INT4 weights, TensorRT engines, and deploy bundles for boards."""

from export.bundle import bundle, copy_to, verify_bundle
from export.errors import ExportError
from export.onnx_export import OnnxFile, to_onnx
from export.session import open_session
from export.tensorrt import parse_trtexec, run_trtexec, tensorrt_status, to_tensorrt, trtexec_command
from export.verify import check_shapes, verify

__all__ = [
    "ExportError", "OnnxFile", "bundle", "check_shapes", "copy_to", "open_session", "parse_trtexec",
    "run_trtexec", "tensorrt_status", "to_onnx", "to_tensorrt", "trtexec_command", "verify", "verify_bundle",
]
