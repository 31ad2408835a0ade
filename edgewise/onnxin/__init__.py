"""ONNX in: a user's ONNX file as a torch module the compression stages prune and quantize, written back as the
same graph with the new weights; its op handlers are plug-ins (register_op_handler, entry points edgewise.onnx_ops).
"""

from edgewise.onnxin.convert import onnx_to_torch
from edgewise.onnxin.graph import OnnxGraph, source_proto
from edgewise.onnxin.handlers import ONNX_OPS, OpHandler, register_op_handler
from edgewise.onnxin.portable import portable, restore

__all__ = ["ONNX_OPS", "OnnxGraph", "OpHandler", "onnx_to_torch", "portable", "register_op_handler", "restore",
           "source_proto"]
