"""Atomic file writes: an artifact is either complete on disk or absent, never half-written."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgewise.board.errors import UserError, filesystem_error

TEMPORARY_SUFFIX = ".tmp"


def leftover_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """The temporary files `atomic_path` (and staging folders, as a bundle's) left under `folder` (recursively) when
    its process was killed mid-write: `.<name>.<pid>.<random>.tmp`. Only their writer may remove them while it runs:
    call this under the folder's lock, or take `stale_temporaries`."""
    found = sorted(p for p in Path(folder).rglob(f".*{TEMPORARY_SUFFIX}") if p.name.count(".") >= 3)
    # a staging folder (a bundle's) is one leftover: what lies inside it goes with it
    return [p for p in found if not any(parent in found for parent in p.parents)]


def remove_temporary(path: Path) -> None:
    """Remove a leftover temporary: a file, or a staging folder with what it holds."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """The leftover temporaries under `folder` whose writing process no longer runs: safe to remove without a lock
    (a folder many processes write into, such as the model cache)."""
    return [path for path in leftover_temporaries(folder) if _dead_writer(path)]


def _dead_writer(path: Path) -> bool:
    """Whether the process whose pid the temporary's name holds (`.<name>.<pid>.<random>.tmp`) no longer runs."""
    pid = path.name.split(".")[-3] if path.name.count(".") >= 4 else ""
    return pid.isdigit() and not _running(int(pid))


def _stale_writes(dest: Path) -> list[Path]:
    """The temporaries `atomic_path` made for `dest` in processes that no longer run."""
    pattern = f"{glob.escape(f'.{dest.name[:200]}.')}*.*{TEMPORARY_SUFFIX}"
    return [path for path in dest.parent.glob(pattern) if not path.is_dir() and _dead_writer(path)]


def _umask() -> int:
    """This process's umask: from /proc/self/status where Linux has it (no window in which it is changed), else by
    setting and restoring it."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Writers that want a file name (torch.save, onnx.save, matplotlib) write to the yielded path.
    The temporary file lives in the destination's directory so the final `os.replace` is atomic
    on POSIX file systems; on any exception it is removed and the old `path` stays untouched. The
    file gets the mode a plain `open` would give it (0666 less the umask: 0644 by default), not the
    temporary file's private 0600.
    """
    dest = Path(path)
    if dest.is_dir():
        raise UserError(f"{dest} is a directory, where a file is to be written", "give the path of a file in it")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        for leftover in _stale_writes(dest):  # a killed earlier write of this very file: nothing else will remove it
            leftover.unlink(missing_ok=True)
        # the writer's pid in the name: a killed writer's leftovers can be told from a live one's (stale_temporaries)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name[:200]}.{os.getpid()}.", suffix=TEMPORARY_SUFFIX,
                                        dir=dest.parent)
    except OSError as exc:
        raise (filesystem_error(exc, dest) or exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise (filesystem_error(exc, dest) or exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically and return the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write `obj` as indented JSON to `path` atomically and return the path."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of the file at `path`, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths appear in metrics; everything else is a programming error
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
