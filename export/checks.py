"""Checks after every export: ONNX Runtime agrees with torch, and the file carries the pruned shapes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from edgewise.board.compare import relative_difference
from edgewise.board.session import open_session, run_samples
from edgewise.compress.layers import weight_layers
from edgewise.compress.outputs import tensors_of
from edgewise.export.errors import ExportError
from edgewise.export.w4a8 import is_w4a8

FLOAT_RTOL = 1e-5
# Exact (unoptimised) run of a 4-bit graph against the fake-quantized torch model: only float summation order differs.
QUANTIZED_RTOL = 1e-4
# MatMulNBits quantizes activations to int8 (accuracy level 4): recorded, and bounded loosely as a sanity check.
FAST_RTOL = 5e-2


def verify(path: str | os.PathLike[str], model: nn.Module, probe: torch.Tensor, quantized: bool = False
           ) -> dict[str, Any]:
    """Run ONNX Runtime on `probe` and compare every output with `model`'s (the fake-quantized torch model for 4-bit
    files; a dict or tuple output compared tensor by tensor).

    The exact session (no graph optimizations) must agree within FLOAT_RTOL (float) or
    QUANTIZED_RTOL (4-bit) relative to the output's largest magnitude; the fast session (the one
    we ship) within FAST_RTOL. A W4A8 file (its activations quantized too, which torch does not
    model) is checked as itself: its fast session (int8 kernels) against its exact one within
    FAST_RTOL; its difference from torch is the activations' quantization error, returned. A
    mismatch raises ExportError. Returns the differences, file size, opset and the argmax agreement.
    """
    with torch.no_grad():
        expected_all = [t.numpy() for t in tensors_of(model.eval()(probe))]
    exact = open_session(path, fast=False)
    fast = open_session(path, fast=True)
    exact_all = run_samples(exact, probe.numpy())
    fast_all = run_samples(fast, probe.numpy())
    if [a.shape for a in exact_all] != [e.shape for e in expected_all]:
        raise ExportError(f"ONNX output shapes {[a.shape for a in exact_all]} differ from torch's "
                          f"{[e.shape for e in expected_all]}", "export again; report the model if it persists")
    rel_exact = max(relative_difference(a, e) for a, e in zip(exact_all, expected_all, strict=True))
    rel_fast = max(relative_difference(a, e) for a, e in zip(fast_all, expected_all, strict=True))
    # the first output is the one scored (a segmentation model's 'out', a classifier's logits)
    got_fast, expected = fast_all[0], expected_all[0]
    # a module that emulates an ONNX graph (edgewise.onnxin) names the tolerance its conversion was checked within
    tolerance = max(QUANTIZED_RTOL if quantized else FLOAT_RTOL, getattr(model, "verify_rtol", 0.0))
    proto = onnx.load(str(path), load_external_data=False)
    w4a8 = is_w4a8(proto)
    if w4a8:
        rel_kernels = max(relative_difference(f, a) for f, a in zip(fast_all, exact_all, strict=True))
        if rel_kernels > FAST_RTOL:
            raise ExportError(f"the W4A8 file's int8 kernels differ from its exact run by {rel_kernels:.2e} "
                              f"(tolerance {FAST_RTOL:.0e})", "the export is wrong; do not deploy it")
    if not w4a8 and rel_exact > tolerance:
        raise ExportError(f"ONNX Runtime differs from torch by {rel_exact:.2e} (relative; tolerance {tolerance:.0e})",
                          "the export is wrong; do not deploy it")
    if not w4a8 and rel_fast > FAST_RTOL:
        raise ExportError(f"the optimised ONNX Runtime session differs by {rel_fast:.2e} (tolerance {FAST_RTOL:.0e})",
                          "run with float activations or report the model")
    max_abs = max(float(np.abs(a - e).max()) for a, e in zip(exact_all, expected_all, strict=True))
    return {"max_abs_diff": max_abs, "rel_diff": rel_exact,
            "fast_rel_diff": rel_fast, "tolerance": None if w4a8 else tolerance, "bytes": Path(path).stat().st_size,
            "opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
            "argmax_agreement": float((got_fast.argmax(1) == expected.argmax(1)).mean())}


def onnx_weight_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Shape of each layer's weight in the file, keyed by layer name, in torch's layout (4-bit ones included)."""
    proto = onnx.load(str(path), load_external_data=False)
    matmul_weights = {n.input[1] for n in proto.graph.node if n.op_type == "MatMul" and len(n.input) > 1}
    shapes = {}
    for init in proto.graph.initializer:
        if init.name.endswith(".weight"):  # a MatMul (a linear layer of a graph converted from ONNX) holds (K, N)
            dims = tuple(init.dims)
            shapes[init.name[: -len(".weight")]] = dims[::-1] if init.name in matmul_weights else dims
        elif init.name.endswith(".weight_quantized"):  # W4A8: as torch holds it, but a MatMul's (K, N)
            dims = tuple(init.dims)
            dq = next((n for n in proto.graph.node if init.name in n.input), None)
            shapes[init.name[: -len(".weight_quantized")]] = dims[::-1] if dq is not None and \
                dq.output[0] in matmul_weights else dims
        elif init.name.endswith(".weight_q"):
            dims = tuple(init.dims)
            consumer = next((n for n in proto.graph.node if init.name in n.input), None)
            block = next((a.i for a in consumer.attribute if a.name == "block_size"), 0) if consumer else 0
            axis = next((a.i for a in consumer.attribute if a.name == "axis"), 1) if consumer else 1
            # linear layers are stored (K, N) for MatMul: back to torch's (N, K)
            linear = len(dims) == 2 and (block or axis == 1)
            shapes[init.name[: -len(".weight_q")]] = dims[::-1] if linear else dims
    return shapes


def check_shapes(path: str | os.PathLike[str], model: nn.Module, original: nn.Module | None = None
                 ) -> list[dict[str, Any]]:
    """Prove the file carries `model`'s (pruned) weight shapes and, with `original`, that pruned ones shrank.

    Every conv/linear weight of `model` must appear in the file with the same shape; a layer the
    pruning shrank must be smaller in the file than in `original`. Returns one row per layer.
    """
    in_file = onnx_weight_shapes(path)
    originals = {n: tuple(m.weight.shape) for n, m in weight_layers(original).items()} if original else {}
    rows, problems = [], []
    for name, module in weight_layers(model).items():
        expected = tuple(module.weight.shape)
        found = in_file.get(name)
        row = {"layer": name, "torch": list(expected), "onnx": list(found) if found else None,
               "original": list(originals[name]) if name in originals else None}
        rows.append(row)
        if found is None:
            problems.append(f"{name} missing")
        elif found != expected:
            problems.append(f"{name} is {found} in the file, {expected} in the pruned model")
        elif name in originals and expected != originals[name] and found == originals[name]:
            problems.append(f"{name} still has its original shape {found}")
    if problems:
        raise ExportError(f"the ONNX file does not carry the pruned shapes: {'; '.join(problems[:3])}",
                          "export the materialised pruned model (channels removed, not masked)")
    return rows
