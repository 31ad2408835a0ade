"""W4A8 in ONNX: 4-bit weight levels and 8-bit activations as Q/DQ pairs, for the int8 kernels that run them
(ONNX Runtime's x86 QLinearConv and QGemm, TensorRT's INT8 explicit quantization).

Every activation tensor of the quantized model's float graph is calibrated here on reference
inputs with Edgewise's calibrators (max, percentile, entropy: edgewise.base.calibration); ONNX
Runtime's own QDQ quantizer then places the Q/DQ pairs where its kernels fuse them, with our
scales as overrides and, per output channel, the record's step as the weight scale, so that the
weight integers are exactly the record's levels (checked). The file stores them as INT4 (UINT4
and a zero point for a [-7, 8] grid): no runtime has 4-bit convolutions, so the session we ship
widens them to INT8 when it loads the file (edgewise.board.session). The graph's outputs stay
float, as the integer kernel's logits do. Layers without a record keep float weights.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgewise.base.calibration import CALIBRATORS, activation_bounds
from edgewise.base.records import RECURRENT_KINDS, QuantizedLayer
from edgewise.board.errors import UserError
from edgewise.board.session import node_consumers, run_samples, session_options, widen_w4a8
from edgewise.compress.arguments import check_records
from edgewise.export.errors import ExportError
from edgewise.export.graph_batchnorm import fold_graph_batchnorm
from edgewise.export.int4 import (
    check_weight,
    int_tensor,
    quantize_recurrent,
    storage_type,
    zero_point_tensor,
)
from edgewise.export.onnx_export import OnnxFile, export_proto, write_proto
from edgewise.export.w4a8_bias import correct_biases
from edgewise.export.w4a8_precision import (
    ACTIVATION_TOLERANCE,
    Sensitivity,
    only_quantized,
    quantized_readers,
    sensitivity,
)

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "LayerNormalization", "InstanceNormalization",
                "GroupNormalization", "BatchNormalization")
"""The ops whose second input ONNX Runtime's QDQ quantizer stores as a quantized weight."""
ACTIVATIONS = ("uint8", "int8")
"""uint8: each tensor's own range with a zero point (0 after ReLU, the FantastIC4 kernel's and ONNX Runtime's x86
U8S8 choice); int8: symmetric, zero point 0 everywhere (what TensorRT's explicit quantization takes)."""
CALIBRATION_BATCH = 16
CALIBRATION_MEMORY = 512 << 20  # bytes of intermediate tensors one calibration batch may hold
MAX_VALUES = 1 << 21  # values kept per tensor for the percentile and entropy calibrators (a uniform subsample)
FORMAT_KEY = "edgewise.format"
FLOAT_NODES_KEY = "edgewise.float_activations"  # the nodes kept at float activations, comma-separated


def is_w4a8(proto: onnx.ModelProto) -> bool:
    """Whether `proto` is a W4A8 file written by to_w4a8 (its metadata says so)."""
    return any(p.key == FORMAT_KEY and p.value == "w4a8" for p in proto.metadata_props)


TENSORRT_FILE = "model-int8.onnx"


def activation_type(proto: onnx.ModelProto) -> str | None:
    """The activation type a W4A8 file was written with (uint8 or int8); None for other files."""
    return next((p.value for p in proto.metadata_props if p.key == "edgewise.activations"), None) \
        if is_w4a8(proto) else None


def for_tensorrt(proto: onnx.ModelProto, command: list[str]) -> tuple[onnx.ModelProto | None, list[str] | None, str]:
    """What a bundle ships for TensorRT from a W4A8 file: the graph with INT8 weights (TensorRT has no 4-bit
    convolutions), the trtexec command reading it with INT8 on, and '' (else None, None and why not: TensorRT takes
    only symmetric int8 activations)."""
    if activation_type(proto) != "int8":
        return None, None, ("TensorRT takes symmetric int8 activations only; this W4A8 file has uint8 ones (export "
                            "it with int8 activations for a TensorRT engine); run.py uses ONNX Runtime")
    widened = onnx.ModelProto()
    widened.CopyFrom(proto)
    rewritten = [f"--onnx={TENSORRT_FILE}" if part.startswith("--onnx=") else part for part in command]
    return widen_w4a8(widened), rewritten + ([] if "--int8" in rewritten else ["--int8"]), ""


def _every_tensor_out(proto: onnx.ModelProto) -> tuple[bytes, list[str]]:
    """The graph with every node output added to its outputs (the tensors a calibration reads), and their names."""
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    present = {o.name for o in probe.graph.output}
    names = [o for node in probe.graph.node for o in node.output if o]
    for name in names:
        if name not in present:
            probe.graph.output.append(helper.make_empty_tensor_value_info(name))
    return probe.SerializeToString(), names


class _Collected:
    """One tensor's calibration values over all batches: its extremes and a uniform subsample."""

    def __init__(self) -> None:
        self.low, self.high, self.parts = 0.0, 0.0, []

    def add(self, values: np.ndarray, keep: int | None, rng: np.random.Generator) -> None:
        flat = values.reshape(-1)
        if not flat.size:
            return
        self.low, self.high = min(self.low, float(flat.min())), max(self.high, float(flat.max()))
        if keep is not None:
            self.parts.append(flat if flat.size <= keep else rng.choice(flat, keep, replace=False))

    def bounds(self, calibrator: str, bits: int) -> tuple[float, float]:
        if calibrator == "max" or not self.parts:
            return (self.low, self.high) if self.high > self.low else (0.0, 1.0)
        values = np.concatenate([*self.parts, [self.low, self.high]])  # the extremes always count
        return activation_bounds(values, calibrator, bits)


def tensor_ranges(proto: onnx.ModelProto, calibration: np.ndarray, calibrator: str = "max", bits: int = 8
                  ) -> dict[str, tuple[float, float]]:
    """Per float tensor of the graph (its input and every node output), the range (low <= 0 <= high) `calibrator`
    finds on `calibration` (the first input's arrays, batch first)."""
    import onnxruntime as ort

    if calibrator not in CALIBRATORS:
        raise UserError(f"unknown activation calibrator {calibrator!r}", f"use one of {', '.join(CALIBRATORS)}")
    calibration = np.asarray(calibration)
    if np.issubdtype(calibration.dtype, np.floating):  # token and byte inputs keep their integer type
        calibration = calibration.astype(np.float32)
    if not len(calibration) or not np.isfinite(calibration).all():
        raise UserError("the calibration inputs are empty or not finite", "calibrate on finite reference inputs")
    probe, names = _every_tensor_out(proto)
    session = ort.InferenceSession(probe, session_options(fast=False), providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]
    collected: dict[str, _Collected] = {}
    rng = np.random.default_rng(0)

    per_sample_kept = None if calibrator == "max" else max(1, MAX_VALUES // len(calibration))

    def collect(x: np.ndarray) -> int:
        """Add the batch `x`'s values of every tensor; returns the bytes they took."""
        values = dict(zip(outputs, run_samples(session, x), strict=True))
        values[first] = x
        keep = None if per_sample_kept is None else per_sample_kept * len(x)
        for name, value in values.items():
            if isinstance(value, np.ndarray) and value.dtype == np.float32:
                collected.setdefault(name, _Collected()).add(value, keep, rng)
        return sum(v.nbytes for v in values.values() if isinstance(v, np.ndarray))

    # every tensor of a batch is held at once: the batch is as large as CALIBRATION_MEMORY allows for this model (a
    # 416-pixel detector's activations take about 100 MB a sample)
    per_sample = collect(calibration[:1])
    batch = int(min(CALIBRATION_BATCH, max(1, CALIBRATION_MEMORY // max(per_sample, 1))))
    for start in range(1, len(calibration), batch):
        collect(calibration[start:start + batch])
    wanted = set(names) | {first}
    return {name: c.bounds(calibrator, bits) for name, c in collected.items() if name in wanted}


def _scalar(value: float, dtype: type) -> np.ndarray:
    return np.array(value, dtype=dtype)


def quantization_overrides(ranges: dict[str, tuple[float, float]], records: dict[str, QuantizedLayer],
                           activations: str = "uint8", transposed: set[str] = frozenset()
                           ) -> dict[str, list[dict[str, Any]]]:
    """ONNX Runtime's TensorQuantOverrides: our scale and zero point for every activation tensor (its range low..high
    on 255 steps, zero exactly representable; int8: symmetric about zero), and per output channel of each recorded
    layer's weight its step with zero point 0 (so the weight integers are the levels; the channel axis is 0, or 1
    for the layers in `transposed`, which a MatMul holds as (inputs, outputs))."""
    if activations not in ACTIVATIONS:
        raise UserError(f"unknown activation type {activations!r}", f"use one of {', '.join(ACTIVATIONS)}")
    overrides: dict[str, list[dict[str, np.ndarray]]] = {}
    for name, (low, high) in ranges.items():
        if activations == "int8":
            overrides[name] = [{"scale": _scalar(max(-low, high) / 127, np.float32), "zero_point": _scalar(0, np.int8)}]
        else:
            scale = (high - low) / 255
            zero = int(np.clip(np.round(-low / scale), 0, 255))
            overrides[name] = [{"scale": _scalar(scale, np.float32), "zero_point": _scalar(zero, np.uint8)}]
    for name, record in records.items():
        steps = np.broadcast_to(record.step.reshape(-1), (record.levels.shape[0],))
        channels = [{"scale": _scalar(s, np.float32), "zero_point": _scalar(0, np.int8)} for s in steps]
        channels[0]["axis"] = 1 if name in transposed else 0
        overrides[f"{name}.weight"] = channels
    return overrides


def _transposed(proto: onnx.ModelProto, name: str) -> bool:
    """Whether the graph holds layer `name`'s weight transposed: a MatMul's (inputs, outputs) layout."""
    return any(n.op_type == "MatMul" and f"{name}.weight" in n.input for n in proto.graph.node)


def float_nodes_line(written: OnnxFile, shown: int = 8) -> str:
    """One line saying which nodes of the W4A8 file `written` keep float activations and why (the sensitivity
    pass's measurements, or the user's list), and what else was done to it (normalizations folded, biases
    corrected)."""
    found, nodes = written.sensitivity, written.float_nodes
    passes = "".join(f"; {len(done)} {what}" for done, what in (
        (written.folded_batchnorms, "BatchNormalizations folded into their convolutions"),
        (written.corrected_biases, "int32 biases corrected")) if done)
    if found is None:
        kept = f"kept float as asked: {', '.join(nodes)}" if nodes else "every node reads 8-bit activations (as asked)"
        return kept + passes
    measured = f"8-bit activations add {found['activation_error']:.3f} relative output error"
    if not nodes:
        return f"every node reads 8-bit activations: {measured}{passes}"
    more = f" and {len(nodes) - shown} more" if len(nodes) > shown else ""
    short = "" if found["within_tolerance"] else "; the tolerance is out of reach with a tenth of the nodes float"
    return (f"kept float by the sensitivity pass ({measured}, {found['activation_error_kept']:.3f} with these "
            f"{len(nodes)} float; {found['sessions']} sessions{short}): "
            f"{', '.join(found['float_nodes'][:shown])}{more}{passes}")


def check_w4a8_records(records: dict[str, QuantizedLayer]) -> None:
    """Refuse records the int8 kernels cannot take (block-wise steps, layers other than convolutions and linear
    layers): checked before any export or calibration work. An LSTM's or GRU's records are taken: no int8 kernel runs
    them, so they keep 4-bit weights and float activations."""
    for name, record in records.items():
        if record.kind in RECURRENT_KINDS:
            continue
        if record.block is not None:
            raise UserError(f"layer {name} has block-wise steps; int8 kernels take one step per layer or per output "
                            "channel", "quantize without block (per layer or per_channel) for W4A8, or export the "
                            "4-bit weights alone (MatMulNBits takes blocks)")
        if record.kind not in ("Linear", "Conv2d", "Conv1d"):
            raise UserError(f"layer {name} is a {record.kind}; W4A8 quantizes 1-D and 2-D convolutions and linear "
                            "layers", f"leave {name} out of quantization (quantize: ignore)")


def _check_records(proto: onnx.ModelProto, records: dict[str, QuantizedLayer]) -> None:
    inits = {i.name: i for i in proto.graph.initializer}
    for name, record in records.items():
        weight = inits.get(f"{name}.weight")
        if weight is None:
            raise ExportError(f"layer {name} has no initializer {name}.weight in the exported graph",
                              "export the same (pruned) model that was quantized")
        check_weight(record, weight, transpose=_transposed(proto, name))


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice (pre-processing) on the root logger that is not for our users."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _placed(proto: onnx.ModelProto, overrides: dict, records: dict[str, QuantizedLayer], activations: str,
            example: np.ndarray) -> onnx.ModelProto:
    """ONNX Runtime's QDQ quantizer on the float graph with our overrides: Q/DQ pairs where its kernels fuse them."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class _OneSample(CalibrationDataReader):  # every range is overridden: its own calibration only has to run
        def __init__(self) -> None:
            self.left = [{proto.graph.input[0].name: example}]

        def get_next(self) -> dict[str, np.ndarray] | None:
            return self.left.pop() if self.left else None

    weights = {f"{name}.weight" for name in records}
    inits = {i.name for i in proto.graph.initializer}
    # nodes with weights but no record keep float weights: the user left them out of 4-bit quantization, or they are
    # no layer of ours (a LayerNormalization's scale, which ONNX Runtime's quantizer writes per axis with a scale of
    # the wrong shape when it lies along another axis than 0)
    excluded = [n.name for n in proto.graph.node if n.op_type in WEIGHTED_OPS
                and len(n.input) > 1 and n.input[1] in inits and n.input[1] not in weights]
    with tempfile.TemporaryDirectory() as scratch, _quiet_quantizer():
        source, target = Path(scratch) / "float.onnx", Path(scratch) / "w4a8.onnx"
        onnx.save_model(proto, str(source))
        quantize_static(str(source), str(target), _OneSample(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                        # int8 activations are symmetric: a ReLU must stay (TensorRT fuses it); the weight scales
                        # are the records' steps, never adjusted for the int32 bias
                        extra_options={"TensorQuantOverrides": overrides, "ActivationSymmetric": activations == "int8",
                                       "QDQKeepRemovableActivations": activations == "int8",
                                       "QDQDisableWeightAdjustForInt32Bias": True})
        return onnx.load(str(target))


def analysis_graph(proto: onnx.ModelProto, overrides: dict, records: dict[str, QuantizedLayer], activations: str,
                   example: np.ndarray) -> onnx.ModelProto:
    """The W4A8 Q/DQ graph with float outputs, every node reading 8-bit activations: what the sensitivity pass edits
    and the file is made of."""
    placed = _placed(proto, overrides, records, activations, example)
    _float_outputs(placed)
    return placed


def _named(proto: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name (op type and index), in place: nodes are kept float by name."""
    taken = {n.name for n in proto.graph.node if n.name}
    for index, node in enumerate(proto.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _floated(placed: onnx.ModelProto, source: onnx.ModelProto, keep_float: str | Sequence[str],
             calibration: np.ndarray, tolerance: float) -> tuple[list[str], Sensitivity | None]:
    """The nodes of the W4A8 graph `placed` to keep float: the sensitivity pass's choice ("auto"), none ("none"), or
    the names given (each checked against the graph)."""
    if keep_float == "auto":
        found = sensitivity(placed, source, calibration, tolerance)
        return found.kept_float, found
    if keep_float == "none":
        return [], None
    if isinstance(keep_float, str):
        raise UserError(f"keep_float {keep_float!r} is neither auto, none nor a list of node names",
                        f"give auto, none or a list, e.g. [{keep_float!r}]")
    readers = quantized_readers(placed)
    unknown = [name for name in keep_float if name not in readers]
    if unknown:
        raise UserError(f"no node {unknown[0]!r} reading 8-bit activations in the exported graph to keep float",
                        f"name such nodes (e.g. {', '.join(list(readers)[:6])}), or use auto")
    return list(keep_float), None


def _four_bit_weights(proto: onnx.ModelProto, records: dict[str, QuantizedLayer], transposed: set[str]) -> None:
    """Store each recorded layer's int8 weight integers as INT4 (or UINT4 with its zero point), after checking that
    they are the record's levels (`transposed`: the layers a MatMul holds as (inputs, outputs))."""
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    replaced: dict[str, TensorProto] = {}
    for name, record in records.items():
        dq = next((n for n in graph.node if n.op_type == "DequantizeLinear" and n.output[0].startswith(
            f"{name}.weight") and n.input[0] in inits and inits[n.input[0]].data_type == TensorProto.INT8), None)
        if dq is None:
            raise ExportError(f"ONNX Runtime's quantizer left layer {name} unquantized",
                              "report this with the model's architecture")
        levels = record.levels.T if name in transposed else record.levels
        written = numpy_helper.to_array(inits[dq.input[0]])
        if written.shape != levels.shape or not np.array_equal(written, levels):
            raise ExportError(f"the 8-bit weight integers of {name} are not its 4-bit levels",
                              "report this with the model's architecture")
        dtype, zero_point = storage_type(record)
        replaced[dq.input[0]] = int_tensor(dq.input[0], levels, dtype, zero_point)
        scale_shape = list(numpy_helper.to_array(inits[dq.input[1]]).shape)
        zero_name = dq.input[2] if len(dq.input) > 2 and dq.input[2] else f"{dq.input[0]}_zero_point"
        replaced[zero_name] = zero_point_tensor(zero_name, dtype, zero_point, scale_shape)
        del dq.input[2:]
        dq.input.append(zero_name)
    kept = [i for i in graph.initializer if i.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(kept + list(replaced.values()))


def _float_outputs(proto: onnx.ModelProto) -> None:
    """Drop the Q/DQ pair in front of each graph output, so that the model returns the float result of its last
    layer (the integer kernel's logits), not that result rounded to 8 bits."""
    graph = proto.graph
    producers = {o: n for n in graph.node for o in n.output}
    readers = node_consumers(graph)
    drop = []
    for output in graph.output:
        dq = producers.get(output.name)
        q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear" or len(readers.get(q.output[0], [])) != 1:
            continue
        source = producers.get(q.input[0])
        if source is None or len(readers.get(q.input[0], [])) != 1:
            continue
        source.output[list(source.output).index(q.input[0])] = output.name
        drop += [id(q), id(dq)]
    kept = [n for n in graph.node if id(n) not in drop]
    del graph.node[:]
    graph.node.extend(kept)


def to_w4a8(model: nn.Module, example_input: torch.Tensor, path: str | os.PathLike[str],
            records: dict[str, QuantizedLayer], calibration: np.ndarray, calibrator: str = "mse",
            activations: str = "uint8", dynamic_batch: bool = True, keep_float: str | Sequence[str] = "auto",
            tolerance: float = ACTIVATION_TOLERANCE, correct_bias: bool = True) -> OnnxFile:
    """Export the quantized `model` (its weights are its records' levels x steps) as a W4A8 ONNX file at `path`.

    Activation ranges are calibrated on `calibration` (reference inputs, batch first) with
    `calibrator`; `activations` is uint8 (ONNX Runtime's x86 fast path, the integer kernel's
    encoding) or int8 (symmetric, for TensorRT). `keep_float` names the nodes whose activations
    stay float: "auto" lets the sensitivity pass (edgewise.export.w4a8_precision) keep those that
    add more than `tolerance` relative output error, "none" keeps none. Their 4-bit weights are
    dequantized as in a 4-bit file; the file's metadata and the result name them. A BatchNormalization
    after a convolution (as converted graphs keep them) is folded into it first, its scale in the
    convolution's steps (edgewise.export.graph_batchnorm), so the signal is rounded once. With
    `correct_bias`, each layer's int32 bias takes out the mean offset its output shows against the
    float graph on the calibration inputs (edgewise.export.w4a8_bias). Records must
    have one step per layer or per output channel (int8 kernels take no blocks). LSTM and GRU
    layers keep float activations and 4-bit weights dequantized once, as in a 4-bit file. The
    write is atomic.
    """
    check_records(records, model)
    check_w4a8_records(records)
    every = records
    records = {n: r for n, r in records.items() if r.kind not in RECURRENT_KINDS}
    proto = export_proto(model, example_input, dynamic_batch)
    _check_records(proto, records)
    proto, records, folded = fold_graph_batchnorm(proto, records)
    every = {**every, **records}
    transposed = {name for name in records if _transposed(proto, name)}
    _named(proto)
    ranges = tensor_ranges(proto, calibration, calibrator)
    overrides = quantization_overrides(ranges, records, activations, transposed)
    calibration = np.asarray(calibration)
    if np.issubdtype(calibration.dtype, np.floating):
        calibration = calibration.astype(np.float32)
    placed = analysis_graph(proto, overrides, records, activations, calibration[:1])
    floated, found = _floated(placed, proto, keep_float, calibration, tolerance)
    quantized = only_quantized(placed, proto, None, set(floated))
    corrected = correct_biases(quantized, proto, calibration) if correct_bias else []
    _four_bit_weights(quantized, records, transposed)
    quantize_recurrent(quantized, every)
    for key, value in ((FORMAT_KEY, "w4a8"), ("edgewise.calibrator", calibrator),
                       ("edgewise.activations", activations), (FLOAT_NODES_KEY, ",".join(floated))):
        quantized.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    written = write_proto(quantized, path, sorted(every))
    written.float_nodes, written.folded_batchnorms, written.corrected_biases = floated, folded, corrected
    written.sensitivity = None if found is None else found.summary()
    return written
