"""Compact storage of a 4-bit layer, as FantastIC4 keeps it on chip: dense nibbles, CSR, CER and CSER.

Each representation encodes a (rows x columns) matrix of integer levels to bytes, decodes it back
exactly, knows its size from a formula (tests check formula == len(encoded)), and drives the
kernel with integer activations. Levels are stored as unsigned nibbles `level - qmin`; column
indices as uint16 (uint32 when a row has more than 65,536 inputs). Layouts (little endian):

- dense: nibbles row-major, two per byte (first in the low nibble).
- CSR: row pointers (rows + 1) x uint32, then per non-zero its nibble (packed), then its column index.
- CER: the non-zero levels ordered by frequency (one byte each, count first); per row, one uint16
  count per codebook entry, then the column indices grouped in codebook order. Summing a group and
  multiplying once by its value is the FantastIC4 arithmetic.
- CSER: as CER but each row lists only its non-empty groups: a uint8 group count, then per group
  its codebook position (uint8) and count (uint16), then the indices.

Every layout starts with a 6-byte header: qmin (int8), bits (uint8), and the step (float32).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from edgewise.base.nibbles import pack_nibbles, unpack_nibbles

HEADER = struct.Struct("<bBf")


def _index_dtype(columns: int) -> np.dtype:
    return np.dtype("<u2") if columns <= 65536 else np.dtype("<u4")


@dataclass
class Encoded:
    """An encoded layer: its representation name, the bytes, and the matrix shape."""

    kind: str
    data: bytes
    shape: tuple[int, int]


def _codebook(levels: np.ndarray) -> np.ndarray:
    values, counts = np.unique(levels[levels != 0], return_counts=True)
    order = np.lexsort((values, -counts))  # most frequent first, ties by value
    return values[order].astype(np.int64)


def size(kind: str, levels: np.ndarray) -> int:
    """Exact bytes of `levels` in representation `kind` (equal to len(encode(kind, ...).data))."""
    rows, columns = levels.shape
    nnz = int(np.count_nonzero(levels))
    index = _index_dtype(columns).itemsize
    if kind == "dense":
        return HEADER.size + (rows * columns + 1) // 2
    if kind == "csr":
        return HEADER.size + 4 * (rows + 1) + (nnz + 1) // 2 + index * nnz
    book = _codebook(levels)
    if kind == "cer":
        return HEADER.size + 1 + book.size + 2 * rows * book.size + index * nnz
    if kind == "cser":
        groups = sum(len(np.unique(row[row != 0])) for row in levels)
        return HEADER.size + 1 + book.size + rows + 3 * groups + index * nnz
    raise ValueError(f"unknown representation {kind!r}")


def encode(kind: str, levels: np.ndarray, qmin: int, bits: int, step: float) -> Encoded:
    """Encode an integer level matrix (rows = outputs) into representation `kind`."""
    _rows, columns = levels.shape
    header = HEADER.pack(qmin, bits, step)
    idx = _index_dtype(columns)
    if kind == "dense":
        return Encoded(kind, header + pack_nibbles(levels - qmin), levels.shape)
    if kind == "csr":
        r, c = np.nonzero(levels)
        pointers = np.concatenate([[0], np.cumsum(np.count_nonzero(levels, axis=1))]).astype("<u4")
        body = pointers.tobytes() + pack_nibbles(levels[r, c] - qmin) + c.astype(idx).tobytes()
        return Encoded(kind, header + body, levels.shape)
    book = _codebook(levels)
    parts = [header, struct.pack("<B", book.size), book.astype(np.int8).tobytes()]
    for row in levels:
        groups = [np.flatnonzero(row == v) for v in book]
        if kind == "cer":
            parts.append(np.array([g.size for g in groups], dtype="<u2").tobytes())
        else:
            present = [(i, g) for i, g in enumerate(groups) if g.size]
            parts.append(struct.pack("<B", len(present)))
            parts.extend(struct.pack("<BH", i, g.size) for i, g in present)
        parts.extend(g.astype(idx).tobytes() for g in groups if g.size)
    if kind not in ("cer", "cser"):
        raise ValueError(f"unknown representation {kind!r}")
    return Encoded(kind, b"".join(parts), levels.shape)


def _cer_groups(enc: Encoded) -> tuple[np.ndarray, list[list[tuple[int, np.ndarray]]], int, int, float]:
    qmin, bits, step = HEADER.unpack_from(enc.data, 0)
    offset = HEADER.size
    (k,) = struct.unpack_from("<B", enc.data, offset)
    book = np.frombuffer(enc.data, dtype=np.int8, count=k, offset=offset + 1).astype(np.int64)
    offset += 1 + k
    rows, columns = enc.shape
    idx = _index_dtype(columns)
    table: list[list[tuple[int, np.ndarray]]] = []
    for _ in range(rows):
        if enc.kind == "cer":
            counts = np.frombuffer(enc.data, dtype="<u2", count=k, offset=offset)
            offset += 2 * k
            present = [(i, int(c)) for i, c in enumerate(counts) if c]
        else:
            (n,) = struct.unpack_from("<B", enc.data, offset)
            offset += 1
            present = []
            for _ in range(n):
                i, c = struct.unpack_from("<BH", enc.data, offset)
                offset += 3
                present.append((i, c))
        row_groups = []
        for i, c in present:
            row_groups.append((i, np.frombuffer(enc.data, dtype=idx, count=c, offset=offset).astype(np.int64)))
            offset += idx.itemsize * c
        table.append(row_groups)
    return book, table, qmin, bits, step


def decode(enc: Encoded) -> np.ndarray:
    """The integer level matrix an encoding holds (int8)."""
    rows, columns = enc.shape
    qmin, _, _ = HEADER.unpack_from(enc.data, 0)
    body = enc.data[HEADER.size:]
    if enc.kind == "dense":
        return (unpack_nibbles(body, rows * columns).astype(np.int16) + qmin).astype(np.int8).reshape(rows, columns)
    out = np.zeros((rows, columns), dtype=np.int8)
    if enc.kind == "csr":
        pointers = np.frombuffer(body, dtype="<u4", count=rows + 1)
        nnz = int(pointers[-1])
        start = 4 * (rows + 1)
        values = unpack_nibbles(body[start:start + (nnz + 1) // 2], nnz).astype(np.int16) + qmin
        columns_at = np.frombuffer(body, dtype=_index_dtype(columns), count=nnz, offset=start + (nnz + 1) // 2)
        row_of = np.repeat(np.arange(rows), np.diff(pointers))
        out[row_of, columns_at.astype(np.int64)] = values
        return out
    book, table, _, _, _ = _cer_groups(enc)
    for r, groups in enumerate(table):
        for i, indices in groups:
            out[r, indices] = book[i]
    return out


def matvec(enc: Encoded, x: np.ndarray) -> np.ndarray:
    """Integer accumulators y = W x (x: int64 vector) computed the way each representation is read on chip."""
    if enc.kind in ("dense", "csr"):
        levels = decode(enc).astype(np.int64)
        return levels @ x
    book, table, _, _, _ = _cer_groups(enc)
    y = np.zeros(len(table), dtype=np.int64)
    for r, groups in enumerate(table):
        # CER: sum each group's inputs, then one multiplication per group
        y[r] = sum(int(book[i]) * int(x[indices].sum()) for i, indices in groups)
    return y


REPRESENTATIONS = ("dense", "csr", "cer", "cser")


def smallest(levels: np.ndarray) -> tuple[str, int]:
    """The representation with the fewest bytes for this layer, and its size, as the chip would choose."""
    sizes = {kind: size(kind, levels) for kind in REPRESENTATIONS}
    best = min(sizes, key=lambda k: (sizes[k], REPRESENTATIONS.index(k)))
    return best, sizes[best]
