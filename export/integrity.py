"""The checksums an ONNX file Edgewise writes carries in its metadata, and the check of them on reading.

ONNX has no checksum of its own: a flipped byte inside a weight, or inside a node's attribute (a
stride, an axis), loads and runs as a different model. Every file the kit writes records the
sha256 of its initializers and Constant tensors and the sha256 of its graph's nodes and signature;
the readers (bench, the integer kernel's reader) refuse a file that no longer matches either
(files written before the graph's checksum existed are checked on their weights).
"""

from __future__ import annotations

import hashlib
import os

import onnx
from onnx import numpy_helper

from edgewise.base.digest import tensors_digest
from edgewise.board.errors import UserError

DIGEST_KEY = "edgewise.weights_sha256"
GRAPH_KEY = "edgewise.graph_sha256"


def _tensors(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    constants = [a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute if a.type == a.TENSOR]
    return [*graph.initializer, *constants]


def weights_digest(proto: onnx.ModelProto) -> str:
    """The digest (edgewise.base.digest) of every initializer and Constant tensor of the main graph."""
    return tensors_digest((t.name, str(t.data_type), tuple(t.dims), numpy_helper.to_array(t).tobytes())
                          for t in _tensors(proto.graph))


def graph_digest(proto: onnx.ModelProto) -> str:
    """Hex sha256 over the main graph's nodes (op, inputs, outputs, attributes; not their debugging metadata) and its
    inputs and outputs, in graph order."""
    digest = hashlib.sha256()
    for node in proto.graph.node:
        digest.update(f"{node.domain}|{node.op_type}|{list(node.input)}|{list(node.output)}|".encode())
        for attribute in node.attribute:
            digest.update(attribute.SerializeToString(deterministic=True))
    for value in [*proto.graph.input, *proto.graph.output]:
        digest.update(value.SerializeToString(deterministic=True))
    return digest.hexdigest()


def stamp(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Record the weights' and the graph's checksums in `proto`'s metadata (replacing earlier ones), in place."""
    kept = [p for p in proto.metadata_props if p.key not in (DIGEST_KEY, GRAPH_KEY)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    proto.metadata_props.append(onnx.StringStringEntryProto(key=DIGEST_KEY, value=weights_digest(proto)))
    proto.metadata_props.append(onnx.StringStringEntryProto(key=GRAPH_KEY, value=graph_digest(proto)))
    return proto


def check_weights(proto: onnx.ModelProto, path: str | os.PathLike[str]) -> None:
    """Refuse a file whose weights or graph no longer match the checksums it was written with (a file without one
    passes that check)."""
    recorded = {p.key: p.value for p in proto.metadata_props if p.key in (DIGEST_KEY, GRAPH_KEY)}
    for key, digest, what in ((DIGEST_KEY, weights_digest, "weights do"), (GRAPH_KEY, graph_digest, "graph does")):
        if key in recorded and digest(proto) != recorded[key]:
            raise UserError(f"{path} is damaged: its {what} not match the checksum Edgewise wrote with them",
                            "export the model again, or copy the file again")
