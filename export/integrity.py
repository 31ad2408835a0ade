"""The weights' checksum an ONNX file Edgewise writes carries in its metadata, and the check of it on reading.

ONNX has no checksum of its own: a flipped byte inside a weight loads and runs as a different
model. Every file the kit writes records the sha256 of its initializers and Constant tensors;
the readers (bench, the integer kernel's reader) refuse a file whose tensors no longer match it.
"""

from __future__ import annotations

import os

import onnx
from onnx import numpy_helper

from edgewise.base.digest import tensors_digest
from edgewise.base.errors import UserError

DIGEST_KEY = "edgewise.weights_sha256"


def _tensors(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    constants = [a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute if a.type == a.TENSOR]
    return [*graph.initializer, *constants]


def weights_digest(proto: onnx.ModelProto) -> str:
    """The digest (edgewise.base.digest) of every initializer and Constant tensor of the main graph."""
    return tensors_digest((t.name, str(t.data_type), tuple(t.dims), numpy_helper.to_array(t).tobytes())
                          for t in _tensors(proto.graph))


def stamp(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Record the weights' checksum in `proto`'s metadata (replacing an earlier one), in place."""
    kept = [p for p in proto.metadata_props if p.key != DIGEST_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    proto.metadata_props.append(onnx.StringStringEntryProto(key=DIGEST_KEY, value=weights_digest(proto)))
    return proto


def check_weights(proto: onnx.ModelProto, path: str | os.PathLike[str]) -> None:
    """Refuse a file whose weights no longer match the checksum it was written with (files without one pass)."""
    recorded = next((p.value for p in proto.metadata_props if p.key == DIGEST_KEY), None)
    if recorded is not None and weights_digest(proto) != recorded:
        raise UserError(f"{path} is damaged: its weights do not match the checksum Edgewise wrote with them",
                        "export the model again, or copy the file again")
