"""Bias correction for a W4A8 graph: each quantized layer's int32 bias absorbs the mean error its output carries.

An integer convolution adds its bias in the accumulator's units, input step x weight step. With
4-bit weights that grid is coarse: a depthwise layer's bias can move by several output steps
when rounded onto it, and the 8-bit rounding of its inputs shifts each channel's mean besides.
Both show as a per-channel offset between the layer's output in the W4A8 graph and in the float
graph (the same 4-bit weights, float activations and biases). Layer by layer, in graph order, the
offset measured on calibration inputs is taken out of the integer bias (empirical bias
correction, as in Nagel et al.'s data-free quantization and NNCF's fast bias correction), each
layer measured with the corrections before it in place: one session per layer.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from edgewise.export.qdq_graph import dropped_activations, int32_bias, producers_of, run_graph

CORRECTION_SAMPLES = 16
CORRECTED_OPS = ("Conv", "Gemm")


def _channel_means(values: np.ndarray, op_type: str) -> np.ndarray:
    """Each output channel's mean: axis 1 of a convolution's (N, C, ...) output, the last axis of a Gemm's."""
    if op_type == "Conv":
        return values.astype(np.float64).swapaxes(0, 1).reshape(values.shape[1], -1).mean(axis=1)
    return values.astype(np.float64).reshape(-1, values.shape[-1]).mean(axis=0)


def correct_biases(placed: onnx.ModelProto, source: onnx.ModelProto, calibration: np.ndarray) -> list[str]:
    """Correct the int32 bias of every quantized Conv and Gemm of the W4A8 graph `placed` (quantized from the float
    graph `source`) in place, on `calibration` (inputs, batch first); returns the corrected nodes' names. A layer
    whose output the float graph does not hold under the same name is left."""
    samples = calibration[:CORRECTION_SAMPLES]
    graph = placed.graph
    inits = {i.name: i for i in graph.initializer}
    producers = producers_of(graph)
    float_tensors = {o for n in source.graph.node for o in n.output}
    # where the quantizer dropped a ReLU or Clip, the layer writes its own, unclipped values (under either name):
    # the float graph holds those as the dropped node's input
    dropped = dropped_activations(source, placed)
    layers = []
    for node in graph.node:
        found = int32_bias(producers, inits, node.input[2]) if node.op_type in CORRECTED_OPS and len(
            node.input) > 2 and node.input[2] else None
        reference = dropped[node.output[0]].input[0] if node.output[0] in dropped else node.output[0]
        if found is not None and reference in float_tensors:
            layers.append((node, reference, *found))
    if not layers:
        return []
    wanted = [reference for _, reference, _, _ in layers]
    expected = [_channel_means(v, node.op_type) for v, (node, *_) in zip(
        run_graph(source, samples, wanted), layers, strict=True)]
    # one layer at a time, in graph order: each is measured with the corrections before it in place (correcting all
    # at once takes an offset out twice, once where it arises and again in every layer it reaches)
    for (node, _, stored, scale), want in zip(layers, expected, strict=True):
        (value,) = run_graph(placed, samples, [node.output[0]])
        offset = _channel_means(value, node.op_type) - want
        bias = numpy_helper.to_array(stored).astype(np.int64)
        moved = np.clip(np.round(bias - offset / np.broadcast_to(scale, bias.shape)), -(2**31), 2**31 - 1)
        stored.CopyFrom(numpy_helper.from_array(moved.astype(np.int32), stored.name))
    return [node.name for node, *_ in layers]
