"""What a path the user names is, asked before the work: an output that is one of the inputs, a folder that cannot
be written, a file that is missing, a symlink loop, a FIFO or a folder where a file should be."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from edgewise.board.errors import UserError, filesystem_error, filesystem_refusal


def regular_file(path: str | os.PathLike[str], role: str, fix: str) -> Path:
    """`path` as a Path when it is a regular file (through symlinks) this process can read; otherwise a UserError
    naming what it is instead (missing, a symlink loop, a folder, a FIFO or device, unreadable) with `fix`. `role`
    names the file in the message (e.g. "recipe")."""
    file = Path(path)
    try:
        mode = os.stat(file).st_mode
    except FileNotFoundError:
        what = "is a symlink to nothing" if os.path.islink(file) else "does not exist"
        raise UserError(f"{role} {file} {what}", fix) from None
    except OSError as exc:
        refusal = filesystem_refusal(exc)
        raise UserError(f"{role} {file} cannot be read: {refusal[0] if refusal else exc.strerror}", fix) from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{role} {file} is a folder, not a file", fix)
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise UserError(f"{role} {file} is {kind}, not a regular file", fix)
    if not os.access(file, os.R_OK):
        raise UserError(f"{role} {file} cannot be read: permission denied", "fix its permissions")
    return file


INPUT_FILES = {".pt": ("model file", "give the path of a .pt file saved by Edgewise or torch.save"),
               ".pth": ("model file", "give the path of a .pt file saved by Edgewise or torch.save"),
               ".onnx": ("ONNX file", "give the path of an .onnx file"),
               ".npz": ("data or records file", "give the path of an .npz file"),
               ".nnc": ("bitstream", "give the path of a .nnc file written by `edgewise encode`"),
               ".py": ("code file", "give the path of the .py file that defines the model's classes"),
               ".json": ("result file", "give the result.json a bundle's run.py wrote")}
"""The files a command names by suffix, what they are called in an error, and the fix."""


def named_inputs(*values: str | os.PathLike[str] | None) -> None:
    """Refuse, before any heavy import, an argument that names an input file by its suffix (a model, an ONNX file,
    an .npz, a bitstream) and is not a readable regular file: a missing path is one line in well under a second,
    not a traceback after torch has loaded. Zoo and data names, folders and None pass."""
    for value in values:
        if value is not None and Path(value).suffix.lower() in INPUT_FILES:
            regular_file(value, *INPUT_FILES[Path(value).suffix.lower()])


MODEL_OR_BUNDLE = "give an .onnx file or a deploy bundle's folder (edgewise export, edgewise deploy)"
"""The fix for a benchmarked path that is not there."""


def existing(path: str | os.PathLike[str], fix: str) -> Path:
    """`path` as a Path when something (a file or a folder) is there; otherwise a UserError saying it does not
    exist, with `fix`."""
    if not os.path.lexists(path):
        raise UserError(f"{path} does not exist", fix)
    return Path(path)


def distinct_output(out: str | os.PathLike[str], *inputs: str | os.PathLike[str] | None) -> None:
    """Refuse an output path that is one of the command's inputs (the same file by any name: a relative path, a
    symlink, a hard link): writing it would destroy the input the command is reading."""
    dest = Path(out)
    for given in inputs:
        if given is None or not Path(given).exists():  # a zoo name, or a file the command will refuse
            continue
        source = Path(given)
        try:
            same = (dest.exists() and os.path.samefile(source, dest)) or dest.resolve() == source.resolve()
        except RuntimeError:  # a symlink loop: pathlib raises RuntimeError for one before Python 3.13
            raise UserError(f"the output {dest} is a symlink loop", "give -o a path without the loop") from None
        except OSError as exc:  # a name too long, a loop (Python 3.13)
            raise (filesystem_error(exc, dest) or exc) from None
        if same:
            raise UserError(f"the output {dest} is the input {source}: writing it would destroy the input",
                            "give the output another name (-o)")


def writable_folder(path: str | os.PathLike[str], role: str) -> Path:
    """Make sure `path` is a folder this process can write files into, creating it (and its parents) if needed, by
    writing and removing a probe file: the check a command makes before its work, so a read-only, full or missing
    place is one line at the start rather than a traceback after minutes of training. `role` names it in the error
    (e.g. "the run folder (--out)")."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".edgewise-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise (filesystem_error(exc, folder, role) or exc) from None
    return folder


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
MAX_NAME = 100  # a run directory's name: well inside every file system's 255-byte limit, with room for suffixes


def run_directory(out: str | os.PathLike[str], name: str) -> Path:
    """`out/name`, the run directory, when `name` is one plain directory name (letters, digits, '.', '_', '-', at
    most MAX_NAME characters); a name with separators or '..', an absolute path, or a too long one is a user error,
    so nothing is written outside `out`."""
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > MAX_NAME or name in (".", ".."):
        raise UserError(f"run name {name[:60]!r}{'...' if len(name) > 60 else ''} is not a plain directory name "
                        f"(at most {MAX_NAME} characters)",
                        "use letters, digits, '.', '_' and '-', starting with a letter or digit; --out picks the "
                        "folder it goes in")
    for folder in (Path(out), *Path(out).parents):
        if folder.is_symlink() and not folder.exists():
            raise UserError(f"--out {out}: {folder} is a symlink to {os.readlink(folder)}, which does not exist",
                            "create the folder it points to, or give --out a real folder")
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--out {out}: {folder} is a file, where a folder is to hold the run",
                            "give a folder for --out (it is created when missing)")
    return Path(out) / name
