"""One copy of each weight in an exported graph: initializers with the same type, shape and bytes are merged.

A graph converted from ONNX gets a module, and so a weight, per node: where the source file shared one tensor between
many nodes (basic-pitch's constant-Q filter bank feeds 16 convolutions from 2 tensors), the export would store it
once per node and grow several times over the file it came from.
"""

from __future__ import annotations

import hashlib

import onnx

MIN_BYTES = 1024
"""Smaller initializers (shapes, scales, axes) are left as they are: merging them saves nothing worth a rename."""


def _reads_outer_names(graph: onnx.GraphProto) -> set[str]:
    """Names that the subgraphs (If, Loop, Scan bodies) of `graph`'s nodes read."""
    read: set[str] = set()
    for node in graph.node:
        for attribute in node.attribute:
            for body in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                read |= {name for inner in body.node for name in inner.input} | _reads_outer_names(body)
    return read


def share_identical_initializers(graph: onnx.GraphProto) -> int:
    """Merge `graph`'s identical initializers (same data type, shape and raw bytes, at least MIN_BYTES) into the first
    of each kind, in place, renaming what read the others; returns the bytes saved. Initializers a subgraph reads, or
    that are graph inputs or outputs, keep their names."""
    pinned = _reads_outer_names(graph) | {v.name for v in graph.input} | {v.name for v in graph.output}
    first: dict[tuple, str] = {}
    renamed: dict[str, str] = {}
    saved = 0
    for tensor in graph.initializer:
        raw = tensor.raw_data
        if tensor.name in pinned or tensor.data_location == onnx.TensorProto.EXTERNAL or len(raw) < MIN_BYTES:
            continue
        key = (tensor.data_type, tuple(tensor.dims), hashlib.sha256(raw).digest())
        if key in first:
            renamed[tensor.name] = first[key]
            saved += len(raw)
        else:
            first[key] = tensor.name
    if not renamed:
        return 0
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
    kept = [t for t in graph.initializer if t.name not in renamed]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return saved
