"""The quantized-layer record shared by compress, export and runtime: integer levels, step sizes, bits (numpy only).

A record holds a layer's weight as integer levels (int8, each within [qmin, qmax]) and the step
size per layer, per output channel, or per block of `block` weights along the input axis;
`levels * scale()` is exactly the float32 weight the quantized torch model computes with.
Biases and other float parameters stay float32. Records are saved as one `.npz` (no pickle) so
the runtime can load them without torch.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.base.atomic import write_bytes
from edgewise.base.digest import tensors_digest
from edgewise.base.grid import MULTIPLIER_MAX, expand_blocks, input_axis_of, multiplied
from edgewise.base.npz import check_fits_in_memory
from edgewise.board.errors import UserError, first_line

FORMAT = "edgewise-quantized/1"
RECURRENT_KINDS = ("LSTM", "GRU")
"""Record kinds whose name is the weight's own state-dict key (`rnn.weight_ih_l0`): one matrix of a recurrent layer."""


@dataclass
class QuantizedLayer:
    """One quantized weight layer.

    `levels` has the weight's shape; `step` is a scalar array (per layer) or one value per output
    channel (`axis` names the channel axis: 0 for conv and linear, 1 for transposed conv).

    Block-wise (`block` set): every run of `block` weights along the input axis (the other of the
    first two: a linear layer's K, a convolution's input channels at each kernel position, as
    ONNX's blocked DequantizeLinear) has its own step, `step[channel] x multipliers[block]`: a
    float32 base per output channel times a signed integer, 1 to 255 in magnitude (a negative one
    puts the block's largest magnitude on the grid's extra negative level, as ONNX Runtime's
    symmetric 4-bit blocks do, whatever its sign). The integer multipliers let an
    integer kernel apply a block's scale exactly (sum the block, multiply once by its integer),
    and the base per channel follows rows of very different size.
    """

    name: str
    kind: str
    levels: np.ndarray
    step: np.ndarray
    bits: int
    qmin: int
    qmax: int
    axis: int | None = None
    bias: np.ndarray | None = None
    method: str = "uniform"
    meta: dict[str, Any] = field(default_factory=dict)
    block: int | None = None
    multipliers: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.levels = np.asarray(self.levels, dtype=np.int8)
        self.step = np.asarray(self.step, dtype=np.float32)
        if self.bias is not None:
            self.bias = np.asarray(self.bias, dtype=np.float32)
        if not 2 <= self.bits <= 8:
            raise UserError(f"{self.name}: bit width {self.bits} is outside 2..8", "choose bits between 2 and 8")
        if self.levels.size and (self.levels.min() < self.qmin or self.levels.max() > self.qmax):
            raise UserError(f"{self.name}: levels outside [{self.qmin}, {self.qmax}]", "re-quantize the layer")
        if self.block is not None:
            self._check_blocks()

    def _check_blocks(self) -> None:
        self.multipliers = np.asarray(self.multipliers, dtype=np.int16)
        if self.axis is None or self.levels.ndim < 2:
            raise UserError(f"{self.name}: block-wise steps need the output channel axis of a 2-D or larger weight",
                            "re-quantize the layer")
        expected = list(self.levels.shape)
        expected[self.input_axis] = -(-expected[self.input_axis] // self.block)
        magnitude = np.abs(self.multipliers)
        if list(self.multipliers.shape) != expected or (self.multipliers.size and (
                magnitude.min() < 1 or magnitude.max() > MULTIPLIER_MAX)):
            raise UserError(f"{self.name}: block multipliers of shape {self.multipliers.shape} do not fit blocks of "
                            f"{self.block} of a {self.levels.shape} weight", "re-quantize the layer")

    @property
    def weight_key(self) -> str:
        """The weight's key in the model's state dict: LAYER.weight, or the record's name for a recurrent matrix."""
        return self.name if self.kind in RECURRENT_KINDS else f"{self.name}.weight"

    @property
    def input_axis(self) -> int:
        """The axis blocks run along: a layer's input axis, the other of its first two (1 unless axis is 1)."""
        return input_axis_of(self.axis)

    def block_steps(self) -> np.ndarray:
        """Per block, its float32 step (base x multiplier), in the multipliers' (blocked) shape."""
        return multiplied(self.step, self.multipliers, self.axis)

    def scale(self) -> np.ndarray:
        """The step broadcastable against `levels` (per layer, along the channel axis, or per weight for blocks)."""
        if self.block is not None:
            return expand_blocks(self.block_steps(), self.input_axis, self.block, self.levels.shape[self.input_axis])
        if self.step.ndim == 0 or self.axis is None:
            return self.step.reshape(())
        shape = [1] * self.levels.ndim
        shape[self.axis] = -1
        return self.step.reshape(shape)

    def dequantize(self) -> np.ndarray:
        """The float32 weight: levels x step, computed in float32 exactly as the torch model holds it."""
        return self.levels.astype(np.float32) * self.scale()

    @property
    def sparsity(self) -> float:
        """Fraction of levels that are zero."""
        return float(np.mean(self.levels == 0)) if self.levels.size else 0.0

    def entropy(self) -> float:
        """Empirical entropy of the levels in bits per weight."""
        _, counts = np.unique(self.levels, return_counts=True)
        p = counts / counts.sum()
        return float(-(p * np.log2(p)).sum())

    def packed_bytes(self) -> int:
        """Bytes of the levels packed at `bits` per weight, plus float32 steps and 9 bits per block multiplier (8 of
        magnitude and a sign; the '4-bit packed' size)."""
        blocks = 0 if self.multipliers is None else self.multipliers.size
        return (self.levels.size * self.bits + 7) // 8 + 4 * self.step.size + (9 * blocks + 7) // 8


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """The digest of every array but the header: numpy does not check a .npz's CRCs when it reads arrays, so a
    damaged byte would otherwise load as a different weight."""
    return tensors_digest((key, value.dtype.str, value.shape, np.ascontiguousarray(value).tobytes())
                          for key, value in arrays.items() if key != "header")


def save_records(path: str | os.PathLike[str], records: dict[str, QuantizedLayer],
                 floats: dict[str, np.ndarray] | None = None) -> Path:
    """Write the records (and any other float parameters) to one `.npz`, atomically, without pickles."""
    arrays: dict[str, np.ndarray] = {}
    header: dict[str, Any] = {"format": FORMAT, "layers": [], "floats": sorted(floats or {})}
    for i, (name, r) in enumerate(records.items()):
        arrays[f"l{i}.levels"], arrays[f"l{i}.step"] = r.levels, r.step
        if r.bias is not None:
            arrays[f"l{i}.bias"] = r.bias
        if r.block is not None:
            arrays[f"l{i}.multipliers"] = r.multipliers
        header["layers"].append({"name": name, "kind": r.kind, "bits": r.bits, "qmin": r.qmin, "qmax": r.qmax,
                                 "axis": r.axis, "method": r.method, "meta": r.meta, "bias": r.bias is not None,
                                 "block": r.block})
    for i, name in enumerate(header["floats"]):
        arrays[f"f{i}"] = np.asarray(floats[name], dtype=np.float32)
    header["sha256"] = _digest(arrays)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    # the archive is made in memory and written in one piece: a write the disk refuses then fails in write_bytes,
    # not inside numpy's open zip file (whose later clean-up printed a second traceback)
    archive = io.BytesIO()
    np.savez(archive, **arrays)
    return write_bytes(path, archive.getvalue())


def load_records(path: str | os.PathLike[str]) -> tuple[dict[str, QuantizedLayer], dict[str, np.ndarray]]:
    """Read records (and the other float parameters) written by `save_records`."""
    try:
        check_fits_in_memory(path, role="the records")
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(npz["header"].tobytes())
            if header.get("format") != FORMAT:
                raise ValueError(f"format {header.get('format')!r}")
            if "sha256" in header and _digest({k: npz[k] for k in npz.files}) != header["sha256"]:
                raise ValueError("its arrays do not match the checksum written with them (the file is damaged)")
            records = {}
            for i, h in enumerate(header["layers"]):
                records[h["name"]] = QuantizedLayer(
                    h["name"], h["kind"], npz[f"l{i}.levels"], npz[f"l{i}.step"], h["bits"], h["qmin"], h["qmax"],
                    h["axis"], npz[f"l{i}.bias"] if h["bias"] else None, h["method"], h["meta"], h.get("block"),
                    npz[f"l{i}.multipliers"] if h.get("block") else None)
            floats = {name: npz[f"f{i}"] for i, name in enumerate(header["floats"])}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        first = first_line(exc)
        raise UserError(f"cannot read quantized records from {path}: {first}",
                        "give a .npz written by Edgewise's quantize stage") from None
    return records, floats
