"""The example recipes and the scripts that prepare their inputs, shipped inside the package: `edgewise examples DIR`
(or `write_examples`) writes them into a folder of the user's, where the README's commands find them."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from edgewise.base.atomic import write_bytes

SKIPPED = ("__init__.py", "__pycache__")


def _files(root: resources.abc.Traversable, prefix: str = "") -> list[tuple[str, bytes]]:
    found = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name in SKIPPED or entry.name.endswith(".pyc"):
            continue
        if entry.is_dir():
            found += _files(entry, f"{prefix}{entry.name}/")
        else:
            found.append((f"{prefix}{entry.name}", entry.read_bytes()))
    return found


def write_examples(folder: str | os.PathLike[str] = "examples") -> tuple[list[Path], list[Path]]:
    """Write every example file into `folder` (created when missing); returns (written, kept): a file already there
    with other contents is kept as it is (the user's own edit), never overwritten."""
    written, kept = [], []
    for name, data in _files(resources.files(__name__)):
        path = Path(folder) / name
        if path.is_file() and path.read_bytes() != data:
            kept.append(path)
            continue
        write_bytes(path, data)
        written.append(path)
    return written, kept
