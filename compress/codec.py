"""Lossless coding of quantized records with NNCodec (DeepCABAC), in a checksummed `.nnc` container.

Levels and block multipliers go to NNCodec as int32 (coded losslessly); step sizes, biases and other float parameters
as their float32 bits viewed as int32, so every value comes back bit-exact. NNCodec itself has
no integrity check, so the container adds one: magic, a (zlib-compressed) JSON header with the layer
layout and the sha256 of the NNCodec payload. A flipped or missing byte is reported, never decoded into a wrong
model.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from edgewise.base.records import QuantizedLayer
from edgewise.board.errors import UserError
from edgewise.compress.arguments import check_records

MAGIC = b"EWNNC1\n"
FORMAT = "edgewise-nnc/1"


class CodecError(UserError):
    """A bitstream that cannot be written or read back (corrupt, truncated, or refused by NNCodec)."""


@dataclass
class Bitstream:
    """An encoded model: the container bytes and what they hold."""

    data: bytes
    payload_bytes: int
    weights: int

    @property
    def bits_per_weight(self) -> float:
        """Container bits over the number of quantized weights."""
        return 8 * len(self.data) / max(self.weights, 1)


def _nnc():
    from nncodec import nnc

    return nnc


def _call(fn, *args, **kwargs):
    """Run an NNCodec function, turning its SystemExit and C++ RuntimeError into CodecError."""
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink):
            return fn(*args, **kwargs)
    except SystemExit as exc:  # nncodec reports its errors by exiting
        raise CodecError(f"NNCodec refused the data: {exc}", "check the arrays (float32/int32 only)") from None
    except RuntimeError as exc:
        raise CodecError(f"NNCodec failed: {str(exc).strip().splitlines()[-1]}",
                         "the bitstream is damaged; encode the model again") from None


def _as_int32(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32).reshape(-1).view(np.int32)


def encode(records: dict[str, QuantizedLayer], floats: dict[str, np.ndarray] | None = None) -> Bitstream:
    """Encode records (and other float parameters) into a `.nnc` container; the round trip is verified here."""
    check_records(records)
    floats = floats or {}
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for i, (name, r) in enumerate(records.items()):
        arrays[f"l{i}.levels"] = np.ascontiguousarray(r.levels, dtype=np.int32)
        arrays[f"l{i}.step"] = _as_int32(r.step)
        if r.bias is not None:
            arrays[f"l{i}.bias"] = _as_int32(r.bias)
        layers.append({"name": name, "kind": r.kind, "bits": r.bits, "qmin": r.qmin, "qmax": r.qmax, "axis": r.axis,
                       "method": r.method, "meta": r.meta, "shape": list(r.levels.shape),
                       "step_shape": list(r.step.shape), "bias": r.bias is not None})
        if r.block is not None:
            arrays[f"l{i}.multipliers"] = np.ascontiguousarray(r.multipliers, dtype=np.int32)
            layers[-1].update(block=r.block, multipliers_shape=list(r.multipliers.shape))
    float_meta = []
    for i, (name, value) in enumerate(floats.items()):
        arrays[f"f{i}"] = _as_int32(value)
        float_meta.append({"name": name, "shape": list(np.shape(value))})
    payload = bytes(_call(_nnc().compress, arrays, bitstream_path=None, qp=-38, use_dq=False,
                          return_bitstream=True, verbose=False))
    header = zlib.compress(json.dumps({"format": FORMAT, "payload_sha256": hashlib.sha256(payload).hexdigest(),
                                       "payload_bytes": len(payload), "layers": layers, "floats": float_meta},
                                      separators=(",", ":")).encode(), 9)
    data = MAGIC + struct.pack("<I", len(header)) + header + payload
    weights = sum(r.levels.size for r in records.values())
    back, back_floats = decode(data)
    for name, r in records.items():
        b = back[name]
        same_blocks = r.block is None or (b.block == r.block and np.array_equal(b.multipliers, r.multipliers))
        if not (np.array_equal(b.levels, r.levels) and np.array_equal(b.step.view(np.int32), r.step.view(np.int32))
                and same_blocks):
            raise CodecError(f"NNCodec did not reproduce the levels of {name} exactly", "report this as a bug")
    for name, value in floats.items():
        if not np.array_equal(back_floats[name].view(np.int32), np.asarray(value, np.float32).view(np.int32)):
            raise CodecError(f"NNCodec did not reproduce float parameter {name} exactly", "report this as a bug")
    return Bitstream(data, len(payload), weights)


def decode(data: bytes) -> tuple[dict[str, QuantizedLayer], dict[str, np.ndarray]]:
    """Decode a `.nnc` container into records and float parameters; damage is an error, never a wrong model."""
    if not data.startswith(MAGIC):
        raise CodecError("not an Edgewise .nnc bitstream (bad magic)", "give a file written by `edgewise encode`")
    try:
        (length,) = struct.unpack_from("<I", data, len(MAGIC))
        start = len(MAGIC) + 4
        header = json.loads(zlib.decompress(data[start:start + length]))
    except (struct.error, ValueError, zlib.error) as exc:
        raise CodecError(f"the bitstream header is damaged: {exc}", "encode the model again") from None
    if header.get("format") != FORMAT:
        raise CodecError(f"unsupported bitstream format {header.get('format')!r}", "encode the model again")
    payload = data[start + length:]
    if len(payload) != header["payload_bytes"]:
        raise CodecError(f"the bitstream is truncated: {len(payload)} of {header['payload_bytes']} payload bytes",
                         "copy the whole file again")
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise CodecError("the bitstream is corrupted: its checksum does not match", "copy or encode the file again")
    arrays = _call(_nnc().decompress, bytearray(payload), verbose=False)
    records = {}
    for i, h in enumerate(header["layers"]):
        levels = np.asarray(arrays[f"l{i}.levels"]).reshape(h["shape"]).astype(np.int8)
        step = np.asarray(arrays[f"l{i}.step"], dtype=np.int32).view(np.float32).reshape(h["step_shape"])
        bias = np.asarray(arrays[f"l{i}.bias"], dtype=np.int32).view(np.float32) if h["bias"] else None
        block = h.get("block")
        multipliers = (np.asarray(arrays[f"l{i}.multipliers"]).reshape(h["multipliers_shape"]).astype(np.int16)
                       if block else None)
        records[h["name"]] = QuantizedLayer(h["name"], h["kind"], levels, step, h["bits"], h["qmin"], h["qmax"],
                                            h["axis"], bias, h["method"], h["meta"], block, multipliers)
    floats = {f["name"]: np.asarray(arrays[f"f{i}"], dtype=np.int32).view(np.float32).reshape(f["shape"])
              for i, f in enumerate(header["floats"])}
    return records, floats
