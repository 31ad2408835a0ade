"""The FantastIC4-style integer MLP: 4-bit weights, a-bit activations, checked integer accumulators.

Inference per layer, for integer inputs x (a-bit) and integer weight levels k (w = step_i x k):

    acc_i = sum_j k_ij x_j + b_i          (b_i = round(bias_i / (step_i x s_x)), in the accumulator's units)
    hidden:  x'_i = clip(round(max(acc_i, 0) x step_i x s_x / s_x'), 0, 2^a - 1)   (integer-only requantizer)
    output:  logit_i = acc_i x step_i x s_x  (float)

The step is one per layer or one per output. With block-wise steps (step_i x m_ib for the b-th
block of inputs, m_ib a signed integer, 1 to 255 in magnitude) the accumulator is acc_i = sum_b m_ib x (sum_{j in b}
k_ij x_j) + b_i: each block is summed on its own and multiplied once by its integer, so the block
scales cost no precision.

Three modes compute acc exactly the same: `bins` (the FantastIC4 scheme: each input is added into
the accumulator of its weight's 4-bit index, then one multiplication per non-empty bin), `bitplanes`
(the 4-multiplier variant: sum per bit-plane of the level's unsigned code, shift, one offset term),
and `fast` (a BLAS GEMM in float32 or float64, chosen per layer so that every partial sum is an
exactly representable integer). An accumulator that leaves its signed `acc_bits` range is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgewise.base.calibration import activation_range
from edgewise.base.grid import expand_blocks
from edgewise.base.records import QuantizedLayer
from edgewise.board.errors import UserError
from edgewise.runtime.activations import Requantizer, quantize_input
from edgewise.runtime.conv import Window, im2col, max_pool, rows_to_maps
from edgewise.runtime.emulators import emulated_costs

MODES = ("bins", "bitplanes", "fast")
GIVEN_SCALES = "given"  # meta calibrator of a kernel whose activation scales came with its records (a W4A8 file)


class AccumulatorOverflow(UserError):
    """An accumulator exceeded its width: the result would have wrapped on the chip."""


@dataclass
class IntegerLayer:
    """One fully-connected layer, or a convolution as its matrix (im2col), in integer form."""

    name: str
    levels: np.ndarray  # (outputs, inputs) int8
    step: np.ndarray  # (outputs,) float64: one value per output (the layer's step repeated, per layer)
    qmin: int
    qmax: int
    bias: np.ndarray  # int64, in units of step x input scale
    input_scale: float
    output_scale: float | None  # None for the last layer (float logits)
    relu: bool
    requantizer: Requantizer | None = None
    exact_float32: bool = False
    block: int | None = None
    multipliers: np.ndarray | None = None  # (outputs, blocks) signed integers, |m| in 1..255, with `block`
    conv: Window | None = None  # a convolution: levels are (outputs, channels x kh x kw), run on im2col rows
    pool: Window | None = None  # max pooling of the layer's requantized output
    gemm_weights: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # the levels (times their blocks' integers) as a transposed float matrix, converted once: the fast mode is
        # then one BLAS call computing the same integers
        dtype = np.float32 if self.exact_float32 else np.float64
        self.gemm_weights = np.ascontiguousarray(self.integer_weights().T, dtype=dtype)

    def integer_weights(self) -> np.ndarray:
        """Each weight's integer factor: its level, times its block's multiplier when the layer has blocks."""
        if self.block is None:
            return self.levels.astype(np.int64)
        return self.levels.astype(np.int64) * expand_blocks(self.multipliers.astype(np.int64), 1, self.block,
                                                            self.levels.shape[1])

    def block_slices(self) -> list[slice]:
        """The runs of inputs that share a step: the blocks, or all inputs as one."""
        inputs = self.levels.shape[1]
        size = self.block or inputs
        return [slice(start, min(start + size, inputs)) for start in range(0, inputs, size)]

    @property
    def shape(self) -> tuple[int, int]:
        """(outputs, inputs)."""
        return self.levels.shape


def _check(acc: np.ndarray, bits: int, layer: str) -> None:
    limit = 2 ** (bits - 1)
    if acc.size and (acc.max() >= limit or acc.min() < -limit):
        raise AccumulatorOverflow(f"layer {layer}: an accumulator reached {int(np.abs(acc).max()):,}, beyond the "
                                  f"{bits}-bit range", "widen acc_bits, or lower the activation bit width")


def accumulate_bins(levels: np.ndarray, x: np.ndarray) -> np.ndarray:
    """FantastIC4 literally: per output, add every input into the accumulator of its weight's level, skip the zero
    bin, then multiply each non-empty accumulator once by its level. x: (batch, inputs) int64."""
    outputs = levels.shape[0]
    values = np.unique(levels)
    values = values[values != 0]
    code = np.searchsorted(values, levels)  # bin per weight; zero weights get masked below
    nonzero = levels != 0
    rows = np.broadcast_to(np.arange(outputs)[:, None], levels.shape)[nonzero]
    bins = rows * len(values) + code[nonzero]
    acc = np.empty((x.shape[0], outputs), dtype=np.int64)
    for n, sample in enumerate(x):
        inputs_of = np.broadcast_to(sample[None, :], levels.shape)[nonzero]
        # bincount sums in float64: exact for integers below 2^53
        sums = np.bincount(bins, weights=inputs_of, minlength=outputs * len(values)).reshape(outputs, len(values))
        acc[n] = np.rint(sums).astype(np.int64) @ values.astype(np.int64)
    return acc


def accumulate_bitplanes(levels: np.ndarray, qmin: int, x: np.ndarray) -> np.ndarray:
    """The 4-multiplier variant: k = qmin + sum_b 2^b bit_b(k - qmin); sum the inputs of each bit-plane, shift,
    and add qmin x sum(x) once. For a [-8, 7] grid this is two's complement (the top plane weighs -8)."""
    unsigned = (levels.astype(np.int64) - qmin)
    bits = max(int(unsigned.max()).bit_length(), 1)
    twos = qmin == -(2 ** (bits - 1)) and unsigned.max() < 2**bits
    codes = levels.astype(np.int64) & (2**bits - 1) if twos else unsigned
    weights = [1 << b for b in range(bits)]
    if twos:
        weights[-1] = -weights[-1]
    acc = np.zeros((x.shape[0], levels.shape[0]), dtype=np.int64)
    for b, w in enumerate(weights):
        plane = ((codes >> b) & 1).astype(bool)
        sums = np.stack([np.where(plane, sample[None, :], 0).sum(axis=1) for sample in x])  # additions only
        acc += w * sums
    if not twos and qmin:
        acc += qmin * x.sum(axis=1, keepdims=True)
    return acc


def accumulate_fast(layer: IntegerLayer, x: np.ndarray) -> np.ndarray:
    """The same integers through BLAS: float32 when every partial sum stays below 2^24, else float64 (< 2^53)."""
    return (x.astype(layer.gemm_weights.dtype) @ layer.gemm_weights).astype(np.int64)


def layer_geometry(record: QuantizedLayer) -> tuple[Window | None, Window | None]:
    """A record's convolution window (None for a linear layer) and the max pooling after it, from its metadata; a
    convolution without its window (records alone, not read from an ONNX file) is refused."""
    pool = Window.from_json(record.meta["max_pool"]) if "max_pool" in record.meta else None
    if record.kind == "Linear":
        return None, pool
    if record.kind != "Conv2d" or "conv" not in record.meta:
        raise UserError(f"layer {record.name} is a {record.kind} whose strides and padding the records do not hold",
                        "emulate the exported ONNX file (edgewise emulate model.onnx): it holds the network's "
                        "convolutions, pooling and flattening")
    if record.block is not None:
        raise UserError(f"convolution {record.name} has block-wise steps",
                        "quantize convolutions per layer or per channel to emulate them")
    return Window.from_json(record.meta["conv"]), pool


def _float_layer(a: np.ndarray, record: QuantizedLayer, conv: Window | None) -> np.ndarray:
    """One layer in float64 (the calibration pass): a linear map, or a convolution through im2col."""
    w = record.dequantize().astype(np.float64).reshape(record.levels.shape[0], -1)
    bias = 0.0 if record.bias is None else record.bias.astype(np.float64)
    if conv is None:
        return a.reshape(len(a), -1) @ w.T + bias
    rows, size = im2col(a, conv)
    return rows_to_maps(rows @ w.T + bias, len(a), size)


def check_input(columns: int, conv: Window | None, x: np.ndarray, name: str) -> None:
    """Refuse inputs `x` (batch first) that the first layer (`columns` weights per output, its convolution window)
    cannot take: a linear layer's input width, a convolution's channels (numpy's matmul error named neither the
    layer nor the data)."""
    if conv is None:
        wanted, given, what = columns, int(np.prod(np.shape(x)[1:])), "values"
    else:
        wanted, what = columns // (conv.kernel[0] * conv.kernel[1]), "channels"
        given = np.shape(x)[1] if np.ndim(x) == 4 else None
    if given != wanted:
        raise UserError(f"the first layer {name} takes {wanted} input {what} per sample, and the data's samples are of "
                        f"shape {tuple(np.shape(x)[1:])}", "give data of the size the model was trained on (--data)")


def calibrated_scales(records: list[QuantizedLayer], calibration: np.ndarray, bits: int, calibrator: str
                      ) -> tuple[list[float], bool]:
    """Each layer's input scale from the range `calibrator` finds over the calibration inputs carried through the
    float layers (ReLU and max pooling between them), and whether the first input is signed."""
    x = np.asarray(calibration, dtype=np.float64)
    check_input(records[0].levels[0].size, layer_geometry(records[0])[0], x, records[0].name)
    signed = bool((x < 0).any())
    scales = []
    a = x
    for i, r in enumerate(records):
        conv, pool = layer_geometry(r)
        signed_input = i == 0 and signed
        top = activation_range(a, calibrator, bits, signed_input)
        scales.append(top / ((2 ** (bits - 1) - 1) if signed_input else (2**bits - 1)))
        a = _float_layer(a, r, conv)
        if i < len(records) - 1:
            a = np.maximum(a, 0.0)
            if pool is not None:
                a = max_pool(a, pool)
    return scales, signed


def given_scales(records: list[QuantizedLayer], bits: int) -> tuple[list[float], bool]:
    """The input scales the records carry (a W4A8 file's, as float32 values), and whether the first input is signed;
    the kernel's encoding must be the file's: unsigned `bits`-bit hidden activations, a signed first input only."""
    if bits != 8:
        raise UserError(f"the records carry 8-bit activation scales, and {bits}-bit activations were asked for",
                        "emulate them with 8-bit activations")
    if any(r.meta.get("input_signed") for r in records[1:]):
        raise UserError(f"layer {records[1].name}'s input is quantized as signed",
                        "the kernel takes unsigned activations after ReLU (export W4A8 with uint8 activations)")
    return [float(np.float32(r.meta["input_scale"])) for r in records], bool(records[0].meta.get("input_signed"))


@dataclass
class IntegerMLP:
    """A chain of fully-connected and convolution layers (ReLU and max pooling between them) run in integers, built
    from quantized-layer records."""

    layers: list[IntegerLayer]
    activation_bits: int = 8
    acc_bits: int = 32
    input_signed: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None  # one sample's (C, H, W) or (features,): sizes a convolution's work

    @classmethod
    def from_records(cls, records: list[QuantizedLayer], calibration: np.ndarray | None, activation_bits: int = 8,
                     acc_bits: int = 32, calibrator: str = "max") -> IntegerMLP:
        """Build from the records of Linear layers in order, with activation scales calibrated on `calibration`.

        Each activation scale is the range `calibrator` finds for the layer's input over the
        calibration inputs (max, percentile or entropy: edgewise.base.calibration) / (2^bits - 1)
        (signed inputs use 2^(bits-1) - 1); larger activations clip. Records read from a W4A8 file
        carry the file's scales (meta `input_scale`, `input_signed`): those are used as they are
        (`calibration` may then be None), so the kernel computes the file's integers. Hidden layers
        are followed by ReLU, the last one gives logits.
        """
        if not records:
            raise UserError("no layers given", "pass the quantized records of an MLP's Linear layers")
        if not 2 <= activation_bits <= 16:
            raise UserError(f"activation bit width {activation_bits} is outside 2..16",
                            "give e.g. 8 (FantastIC4 and int8 runtimes use 8)")
        if not 8 <= acc_bits <= 64:
            raise UserError(f"accumulator width {acc_bits} is outside 8..64", "give e.g. 32")
        geometry = [layer_geometry(r) for r in records]
        if all("input_scale" in r.meta for r in records):
            scales, signed = given_scales(records, activation_bits)
        elif calibration is None:
            raise UserError("the records carry no activation scales", "pass calibration inputs")
        else:
            scales, signed = calibrated_scales(records, calibration, activation_bits, calibrator)
        layers = []
        for i, (r, (conv, pool)) in enumerate(zip(records, geometry, strict=True)):
            levels = r.levels.reshape(r.levels.shape[0], -1)
            outputs, inputs = levels.shape
            step = np.broadcast_to(r.step.astype(np.float64).reshape(-1), (outputs,)).copy()
            last = i == len(records) - 1
            unit = step * scales[i]
            bias = np.zeros(outputs, np.int64) if r.bias is None else np.rint(
                r.bias.astype(np.float64) / unit).astype(np.int64)
            out_scale = None if last else scales[i + 1]
            max_x = 2 ** (activation_bits - 1) if (i == 0 and signed) else 2**activation_bits - 1
            largest = 1 if r.block is None else int(np.abs(r.multipliers).max())
            bound = inputs * max_x * max(abs(r.qmin), abs(r.qmax)) * largest
            per_layer = r.block is None and r.step.size == 1  # one requantizer for the layer, as the chip has
            requantizer = None if last else Requantizer.from_scale(
                unit[0] / out_scale if per_layer else unit / out_scale, activation_bits)
            layers.append(IntegerLayer(
                r.name, levels, step, r.qmin, r.qmax, bias, scales[i], out_scale, not last, requantizer,
                exact_float32=bound < 2**24, block=r.block,
                multipliers=None if r.block is None else r.multipliers.astype(np.int64), conv=conv,
                pool=None if last else pool))
        given = all("input_scale" in r.meta for r in records)
        shape = tuple(records[0].meta["input_shape"]) if "input_shape" in records[0].meta else (
            None if calibration is None else tuple(np.asarray(calibration).shape[1:]))
        return cls(layers, activation_bits, acc_bits, signed,
                   {"scales": scales, "calibrator": GIVEN_SCALES if given else calibrator}, shape)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Inputs as integers at the first layer's activation scale: (batch, features), or as given for a network
        that starts with a convolution."""
        x = np.asarray(x, dtype=np.float64)
        first = self.layers[0]
        check_input(first.levels.shape[1], first.conv, x, first.name)
        flat = x if self.layers[0].conv is not None else x.reshape(len(x), -1)
        return quantize_input(flat, self.layers[0].input_scale, self.activation_bits, self.input_signed)

    def accumulate(self, layer: IntegerLayer, x: np.ndarray, mode: str) -> np.ndarray:
        """Integer accumulators of one layer (before bias) in the given mode; with blocks, each block's sum is
        multiplied by its integer and the blocks are added."""
        if mode == "fast":
            return accumulate_fast(layer, x)
        if mode not in MODES:
            raise UserError(f"unknown kernel mode {mode!r}", f"use one of {', '.join(MODES)}")
        acc = np.zeros((x.shape[0], layer.levels.shape[0]), dtype=np.int64)
        for b, part in enumerate(layer.block_slices()):
            levels, inputs = layer.levels[:, part], x[:, part]
            sums = accumulate_bins(levels, inputs) if mode == "bins" else accumulate_bitplanes(levels, layer.qmin,
                                                                                                inputs)
            acc += sums if layer.block is None else sums * layer.multipliers[:, b]
        return acc

    def run_integers(self, x: np.ndarray, mode: str = "fast") -> tuple[list[np.ndarray], np.ndarray]:
        """Every layer's integer accumulators (bias included; a convolution's as (batch, outputs, H, W)) for float
        inputs `x`, and the final float logits."""
        a = self.quantize(x)
        accs = []
        for layer in self.layers:
            rows, size = im2col(a, layer.conv) if layer.conv is not None else (a.reshape(len(a), -1), None)
            acc = self.accumulate(layer, rows, mode) + layer.bias
            _check(acc, self.acc_bits, layer.name)
            unit = layer.step * layer.input_scale
            if layer.requantizer is not None:
                out = layer.requantizer(np.maximum(acc, 0), nonnegative=True)
            else:
                out = acc.astype(np.float64) * unit
            if size is not None:
                acc, out = rows_to_maps(acc, len(a), size), rows_to_maps(out, len(a), size)
            accs.append(acc)
            a = max_pool(out, layer.pool) if layer.pool is not None else out
        return accs, a

    def positions(self) -> list[int]:
        """Per layer, how many input vectors one sample feeds it: a convolution's output pixels, 1 for a linear
        layer (needs `input_shape` for a network with convolutions)."""
        if all(layer.conv is None for layer in self.layers):
            return [1] * len(self.layers)
        if self.input_shape is None or len(self.input_shape) != 3:
            raise UserError("the network's input size is unknown, and its convolutions' work depends on it",
                            "build the kernel with calibration inputs, or from an ONNX file with a fixed input size")
        height, width = self.input_shape[1:]
        counts = []
        for layer in self.layers:
            if layer.conv is None:
                counts.append(1)
                continue
            height, width = layer.conv.output_size(height, width)
            counts.append(height * width)
            if layer.pool is not None:
                height, width = layer.pool.output_size(height, width)
        return counts

    def run(self, x: np.ndarray, mode: str = "fast") -> np.ndarray:
        """Float logits for inputs `x` (batch first), computed in integers in `mode` (bins, bitplanes or fast)."""
        return self.run_integers(x, mode)[1]

    def costs(self, target: str = "fantastic4-asic", batch: int = 1) -> dict[str, Any]:
        """Emulated cost of `batch` inferences on an emulated accelerator target: per layer and in total.

        The target's profile names its cost model (see edgewise.runtime.emulators); every figure
        is labelled emulated. The kernel itself runs any weight width, bit-exact; a cost model
        refuses widths its chip does not have.
        """
        return emulated_costs(self, target, batch)
