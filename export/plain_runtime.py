"""Which runtime a shipped file is fast in, and the variant of it that a plain ONNX Runtime session runs fast.

The kit's session (board.session.open_session, and a deploy bundle's run.py) rewrites a file with
4-bit DequantizeLinear weights when it loads it: W4A8 layers' weights widened to INT8 for the int8
kernels, 4-bit weights of convolutions, Gemm and recurrent layers dequantized once, MatMulAddFusion
off so the 4-bit MatMul layers become MatMulNBits. A user who opens the same file in a plain
`onnxruntime.InferenceSession` gets none of that, and ONNX Runtime then dequantizes every 4-bit
weight on every run. The plain variant is that rewritten graph saved as a file, with every 4-bit
weight outside the int8 kernels stored dequantized (float32: a plain session fuses MatMul+Add into
Gemm before it could pick MatMulNBits), so it is as large as the float layers it holds and as fast
in any session as the kit's. `runtime_speeds` times the file in both sessions, and the variant, at
batch 1 on this machine.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from edgewise.base.atomic import atomic_path
from edgewise.board.session import fold_dequantized_weights, open_session, session_options, widen_w4a8
from edgewise.board.timing import time_runs
from edgewise.export.integrity import stamp
from edgewise.export.qdq_graph import drop_unread

PLAIN_SUFFIX = ".plain.onnx"
"""The variant's name: the shipped file's with this suffix."""
RUNTIME_KEY = "edgewise.runtime"
"""Metadata: which session the variant was made for."""
SLOWER = 1.2
"""A plain session this many times slower than the kit's: the export writes the variant (policy auto)."""
POLICIES = ("auto", "always", "never")
"""When the export writes the variant: when a plain session is slower, always, or never."""
TIMED_RUNS = 30


def needs_kit_session(proto: onnx.ModelProto) -> bool:
    """Whether the kit's session loads `proto` as something other than the file (it has 4-bit DequantizeLinear
    weights, which a plain session dequantizes on every run)."""
    four_bit = {i.name for i in proto.graph.initializer if i.data_type in (onnx.TensorProto.INT4,
                                                                          onnx.TensorProto.UINT4)}
    return any(n.op_type == "DequantizeLinear" and n.input[0] in four_bit for n in proto.graph.node)


def plain_variant(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `proto` as the kit's session loads it, for a plain session: 4-bit weights of W4A8 layers as INT8,
    every other 4-bit weight dequantized to float32; stamped with its own checksums and named in its metadata."""
    variant = fold_dequantized_weights(widen_w4a8(copy.deepcopy(proto)), ops=None)
    drop_unread(variant.graph)
    kept = [p for p in variant.metadata_props if p.key != RUNTIME_KEY]
    del variant.metadata_props[:]
    variant.metadata_props.extend(kept)
    variant.metadata_props.add(key=RUNTIME_KEY, value="a plain ONNX Runtime session: 4-bit weights stored "
                                                      "dequantized (float32), or as INT8 where int8 kernels read them")
    return stamp(variant)


def _median_ms(session: Any, feeds: dict[str, np.ndarray], runs: int) -> float:
    timed = time_runs(lambda: session.run(None, feeds), 0.0, 3, runs, 0.0)
    return float(timed["median_ms"])


def _plain_session(path: str | os.PathLike[str]) -> ort.InferenceSession:
    """The file as a user opens it: ONNX Runtime's own optimizations (the kit's options, whose level is its default,
    its load-time notes silenced), without the kit's rewrite or its disabled fusion."""
    return ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class RuntimeSpeeds:
    """Batch-1 medians (ms, measured here) of a shipped file in the kit's session and in a plain one, and of its
    plain variant in a plain session when one was written."""

    kit_ms: float
    plain_ms: float
    variant: Path | None = None
    variant_ms: float | None = None
    variant_bytes: int | None = None
    runs: int = TIMED_RUNS

    @property
    def plain_is_slower(self) -> bool:
        """Whether a plain session runs the file markedly slower than the kit's (SLOWER)."""
        return self.plain_ms > SLOWER * self.kit_ms

    def line(self, name: str) -> str:
        """One sentence for a person: which runtime `name` is fast in, and the variant for the other."""
        head = (f"{name} at batch 1 (measured here, median of {self.runs} runs): {self.kit_ms:.2f} ms in the kit's "
                f"session (edgewise.export.open_session, a bundle's run.py), {self.plain_ms:.2f} ms in a plain ONNX "
                "Runtime session")
        if self.variant is not None:
            return (f"{head}; {self.variant.name} ({self.variant_bytes:,} bytes) is the variant for a plain session: "
                    f"{self.variant_ms:.2f} ms there")
        if self.plain_is_slower:
            return f"{head}; --plain-variant always writes the variant a plain session runs fast"
        return f"{head}: fast in either"

    def to_json(self) -> dict[str, Any]:
        """The figures, for metrics files and reports."""
        return {"kit_ms": self.kit_ms, "plain_ms": self.plain_ms, "variant": None if self.variant is None else
                self.variant.name, "variant_ms": self.variant_ms, "variant_bytes": self.variant_bytes,
                "runs": self.runs, "kind": "measured"}


def variant_path(path: str | os.PathLike[str]) -> Path:
    """Where the plain variant of the file at `path` goes: beside it, PLAIN_SUFFIX for its suffix."""
    file = Path(path)
    return file.with_name(file.name.removesuffix(".onnx") + PLAIN_SUFFIX)


def write_plain_variant(path: str | os.PathLike[str], destination: str | os.PathLike[str] | None = None,
                        proto: onnx.ModelProto | None = None) -> Path | None:
    """Write the plain variant of the file at `path` (its `proto` when already read) to `destination` (default:
    variant_path), atomically; None, and nothing written, for a file the kit's session loads as written."""
    proto = proto if proto is not None else onnx.load(str(path))
    if not needs_kit_session(proto):
        return None
    target = Path(destination) if destination is not None else variant_path(path)
    with atomic_path(target) as staged:
        onnx.save(plain_variant(proto), str(staged))
    return target


def runtime_speeds(path: str | os.PathLike[str], sample: np.ndarray, policy: str = "auto",
                   destination: str | os.PathLike[str] | None = None, runs: int = TIMED_RUNS,
                   timer: Callable[[Any, dict[str, np.ndarray], int], float] = _median_ms) -> RuntimeSpeeds | None:
    """Time the file at `path` on the first of `sample` (its input) in the kit's session and a plain one; write its
    plain variant to `destination` (default: variant_path) when `policy` says (auto: when a plain session is SLOWER
    times the kit's) and time that too. None for a file the kit's session loads as written (nothing to compare)."""
    if policy not in POLICIES:
        raise ValueError(f"policy {policy!r} is not one of {POLICIES}")
    proto = onnx.load(str(path))
    if not needs_kit_session(proto):
        return None
    kit = open_session(path)
    one = {kit.get_inputs()[0].name: np.ascontiguousarray(sample[:1])}
    speeds = RuntimeSpeeds(timer(kit, one, runs), timer(_plain_session(path), one, runs), runs=runs)
    if policy == "never" or (policy == "auto" and not speeds.plain_is_slower):
        return speeds
    target = write_plain_variant(path, destination, proto)
    return RuntimeSpeeds(speeds.kit_ms, speeds.plain_ms, target, timer(_plain_session(target), one, runs),
                         target.stat().st_size, runs)

