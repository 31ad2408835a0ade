"""The size an .npz asks for, read from its members' headers before any array is inflated: a header that declares
10^11 elements or a zip bomb is refused in one line instead of ending in a MemoryError (or the OOM killer)."""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np

from edgewise.board.errors import DataError
from edgewise.board.system import available_memory


def declared_bytes(path: str | os.PathLike[str], float_copies: int = 0) -> int:
    """The bytes the arrays of the .npz at `path` take once loaded, plus `float_copies` float32 (or wider) copies of
    each (what a data set makes of them), from the shape and dtype each member's .npy header declares. A file that is
    no zip, or a member that is no .npy, raises what numpy's reader raises (ValueError, zipfile.BadZipFile)."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if not member.filename.endswith(".npy"):
                continue
            with archive.open(member) as fh:
                version = np.lib.format.read_magic(fh)
                # the public readers exist per format version; this one reads them all
                shape, _, dtype = np.lib.format._read_array_header(fh, version)
            total += math.prod(shape) * (dtype.itemsize + float_copies * max(dtype.itemsize, 4))
    return total


def check_fits_in_memory(path: str | os.PathLike[str], float_copies: int = 0, role: str = "") -> None:
    """Refuse, before allocating, an .npz whose arrays (and `float_copies` float copies of them) would not fit in the
    memory this machine has free; `role` says what the file is in the message (e.g. "the data")."""
    need, free = declared_bytes(path, float_copies), available_memory()
    if need > free:
        copies = f" with the {float_copies} float copies made of it" if float_copies else ""
        raise DataError(f"{role or 'the file'} {path} would take {need / 2**30:.1f} GiB of memory{copies}, more than "
                        f"the {free / 2**30:.1f} GiB free here",
                        "give a sample of the data (the kit holds the arrays in memory)")
