"""Export: ONNX with pruned shapes and INT4 weights, TensorRT engines, and deploy bundles for boards.

Its public names are imported on first use: a session or a bundle check does not import torch.
"""

from edgewise.base.lazy import lazy_attributes

_WHERE = {
    "ExportError": ".errors", "OnnxFile": ".onnx_export", "to_onnx": ".onnx_export",
    "bundle": ".bundles", "copy_to": ".bundles", "verify_bundle": ".bundles",
    "SessionError": "..board.session", "open_session": "..board.session",
    "parse_trtexec": "..board.trtexec_report", "run_trtexec": ".tensorrt", "tensorrt_status": ".tensorrt",
    "to_tensorrt": ".tensorrt", "trtexec_command": ".tensorrt",
    "check_shapes": ".checks", "verify": ".checks",
    "records_from_onnx": ".onnx_records", "rounded_layer": ".onnx_records",
    "to_w4a8": ".w4a8", "is_w4a8": ".w4a8",
}
__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
__all__ = sorted(_WHERE)
