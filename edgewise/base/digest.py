"""The one checksum of a model's weights: sha256 over each named tensor's dtype, shape and bytes, in name order.

Archives do not protect their payload where we read it (torch and numpy skip their zip CRCs, ONNX
has none), so files the kit writes carry this digest of their weights and are checked on load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def tensors_digest(tensors: Iterable[tuple[str, str, tuple[int, ...], bytes]]) -> str:
    """Hex sha256 over (name, dtype, shape, raw bytes) entries, taken in name order."""
    digest = hashlib.sha256()
    for name, dtype, shape, data in sorted(tensors, key=lambda entry: entry[0]):
        digest.update(f"{name}|{dtype}|{tuple(shape)}|".encode())
        digest.update(data)
    return digest.hexdigest()
