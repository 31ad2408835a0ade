"""Export: ONNX with pruned shapes and INT4 weights, TensorRT engines, and deploy bundles for boards.

Its public names are imported on first use: a session or a bundle check does not import torch.
"""

from typing import TYPE_CHECKING

from edgewise.base.lazy import lazy_attributes

if TYPE_CHECKING:  # the lazy names' definitions, for type checkers and editors (nothing imported at run time)
    from edgewise.board.session import SessionError, open_session
    from edgewise.board.trtexec_report import parse_trtexec
    from edgewise.export.bundles import bundle, copy_to, verify_bundle
    from edgewise.export.checks import check_shapes, verify
    from edgewise.export.errors import ExportError
    from edgewise.export.onnx_export import OnnxFile, to_onnx
    from edgewise.export.onnx_records import records_from_onnx, rounded_layer
    from edgewise.export.tensorrt import run_trtexec, tensorrt_status, to_tensorrt, trtexec_command
    from edgewise.export.w4a8 import is_w4a8, to_w4a8

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
