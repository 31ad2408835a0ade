"""Deploy bundles: one directory (or tarball) with the model, a manifest of hashes, a probe, and the board runner."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import edgewise.board
from edgewise.base.atomic import TEMPORARY_SUFFIX, sha256_file
from edgewise.board.compare import relative_difference
from edgewise.board.errors import filesystem_error, first_line
from edgewise.board.manifest import (
    SIGNATURE,
    BundleError,
    check_files,
    check_signature,
    read_key,
    read_manifest,
    signature,
)
from edgewise.board.runner import RUN_OUTPUTS
from edgewise.board.session import open_session, run_samples
from edgewise.export.checks import FAST_RTOL
from edgewise.export.errors import ExportError
from edgewise.export.w4a8 import TENSORRT_FILE, for_tensorrt, is_w4a8

FORMAT = "edgewise-bundle/2"  # 2: the board package whole in edgewise_board/, run.py its launcher
BOARD_PACKAGE = "edgewise_board"  # the board package's name in a bundle
# the bundle's entry point: the board package's runner, on the bundle's folder
RUN_PY = f'''"""Run this Edgewise bundle on the board: python3 run.py --help (the runner: {BOARD_PACKAGE}/runner.py)."""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # the bundle stays as shipped: no __pycache__ among its hashed files
here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
from {BOARD_PACKAGE}.runner import main  # noqa: E402

sys.exit(main(root=here))
'''


def board_files() -> dict[str, Path]:
    """The board package's files (edgewise.board, the folder whole, its caches left out) by their names in a bundle:
    the board runs and measures with the kit's own code."""
    root = Path(edgewise.board.__file__).parent
    return {f"{BOARD_PACKAGE}/{path.relative_to(root).as_posix()}": path for path in sorted(root.rglob("*.py"))}


def _readme(name: str, command: list[str] | None, no_tensorrt: str) -> str:
    tensorrt = (f"To build and time a TensorRT engine by hand:\n    {' '.join(command)}\n\n" if command else
                f"No TensorRT engine: {no_tensorrt}.\n\n")
    return (f"Edgewise deploy bundle '{name}'.\n\n"
            "On the board (needs Python 3 with numpy, and onnxruntime or TensorRT's trtexec):\n"
            "    python3 run.py                 # checks hashes and the probe; measures latency, memory and energy\n"
            "    python3 run.py --backend onnxruntime --duration 30\n"
            "    sudo python3 run.py            # where the power rails are readable by root only\n\n"
            + tensorrt +
            "Copy result.json back and give it to `edgewise bench` to replace estimates with this measurement.\n")


def check_target(out: str | os.PathLike[str], tar: bool = False) -> None:
    """Refuse a place a bundle would destroy something at: an existing file (a bundle is a folder), or a folder that
    is not a bundle (its files would be replaced). An earlier bundle there is replaced, as a rebuild should be."""
    target = Path(out)
    if tar:
        target = target.with_name(target.name + ".tar.gz")
        if target.is_dir():
            raise ExportError(f"{target} is a folder, where the bundle archive is to be written",
                              "give -o another name")
        return
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target} is a file; a bundle is a folder and would replace it",
                          "give -o the name of a new folder (or --tar for an archive)")
    if target.is_dir() and any(target.iterdir()) and not (target / "manifest.json").is_file():
        raise ExportError(f"{target} is a folder with files of its own, not a bundle: writing the bundle there "
                          "would replace them", "give -o the name of a new folder")


def bundle(onnx_path: str | os.PathLike[str], out: str | os.PathLike[str], *, name: str, probe_input: np.ndarray,
           probe_output: np.ndarray, trtexec: list[str] | None, preprocessing: dict[str, Any] | None = None,
           bitstream: str | os.PathLike[str] | None = None, tar: bool = False,
           sign_key: str | os.PathLike[str] | None = None) -> Path:
    """Write a deploy bundle to `out` (a directory, or `out`.tar.gz with `tar`) and return its path.

    The bundle holds model.onnx, the NNCodec bitstream if given, the probe input and the expected
    output (the torch model's), run.py and the board package it runs (edgewise.board: the kit's
    own runner, session, timing loop, trtexec reader and energy meters, so the board runs the graph
    we measured and measures it as the kit does), README.txt and manifest.json with the sha256 and
    size of every file, the input names/shapes/dtypes and the trtexec command. A W4A8 model ships
    a copy with INT8 weights for TensorRT (int8 activations), or no trtexec command and the reason
    (uint8 ones). With
    `sign_key` (a key file) the manifest carries its HMAC-SHA256, which `verify_bundle` and run.py
    check when given the key: a bundle rewritten with new hashes no longer passes. It is
    assembled in a temporary directory and renamed into place, so a failure leaves no half bundle.
    """
    target = Path(out)
    check_target(target, tar)
    try:
        return _assemble(target, onnx_path, name, probe_input, probe_output, trtexec, preprocessing, bitstream, tar,
                         sign_key)
    except OSError as exc:  # read-only, full, a name too long: the bundle's name, not a staging file's
        raise (filesystem_error(exc, target) or exc) from None


def _assemble(target: Path, onnx_path: str | os.PathLike[str], name: str, probe_input: np.ndarray,
              probe_output: np.ndarray, trtexec: list[str] | None, preprocessing: dict[str, Any] | None,
              bitstream: str | os.PathLike[str] | None, tar: bool, sign_key: str | os.PathLike[str] | None) -> Path:
    """Build the bundle in a staging folder beside `target` and rename it into place (see `bundle`)."""
    import onnx

    target.parent.mkdir(parents=True, exist_ok=True)
    # named as atomic_path names its temporaries: a killed writer's staging folder is a leftover the run removes
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:200]}.{os.getpid()}.", suffix=TEMPORARY_SUFFIX,
                                    dir=target.parent))
    try:
        shutil.copyfile(onnx_path, staging / "model.onnx")
        files = ["model.onnx"]
        model = onnx.load(str(staging / "model.onnx"), load_external_data=False)
        no_tensorrt = ""
        if is_w4a8(model):
            for_trt, trtexec, no_tensorrt = for_tensorrt(model, trtexec)
            if for_trt is not None:
                onnx.save_model(for_trt, str(staging / TENSORRT_FILE))
                files.append(TENSORRT_FILE)
        if bitstream is not None:
            shutil.copyfile(bitstream, staging / "model.nnc")
            files.append("model.nnc")
        np.save(staging / "probe_input.npy", probe_input.astype(np.float32))
        np.save(staging / "probe_output.npy", probe_output.astype(np.float32))
        (staging / "run.py").write_text(RUN_PY)
        shipped = board_files()
        for name_in_bundle, source in shipped.items():
            (staging / name_in_bundle).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / name_in_bundle)
        (staging / "README.txt").write_text(_readme(name, trtexec, no_tensorrt))
        files += ["probe_input.npy", "probe_output.npy", "run.py", *shipped, "README.txt"]
        graph = model.graph
        inputs = [{"name": i.name, "shape": [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim],
                   "dtype": onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name}
                  for i in graph.input]
        manifest = {
            "format": FORMAT, "name": name, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "model": "model.onnx", "inputs": inputs, "preprocessing": preprocessing or {},
            "probe": {"input": "probe_input.npy", "output": "probe_output.npy", "rtol": FAST_RTOL},
            "trtexec": trtexec, **({"no_tensorrt": no_tensorrt} if no_tensorrt else {}),
            "files": {f: {"sha256": sha256_file(staging / f), "bytes": (staging / f).stat().st_size} for f in files},
        }
        if sign_key is not None:
            try:
                manifest[SIGNATURE] = signature(manifest, read_key(sign_key))
            except BundleError as exc:
                raise ExportError(str(exc), "give a key file of at least 16 bytes (edgewise bundle keygen)") from None
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if tar:
            archive = target.with_name(target.name + ".tar.gz")
            tmp_archive = staging.with_name(f"{staging.name[:-len(TEMPORARY_SUFFIX)]}.tar.gz{TEMPORARY_SUFFIX}")
            try:
                with tarfile.open(tmp_archive, "w:gz") as handle:
                    handle.add(staging, arcname=target.name)
                os.replace(tmp_archive, archive)
            finally:
                tmp_archive.unlink(missing_ok=True)
            return archive
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            try:
                os.replace(staging, target)
            except OSError:
                os.replace(old, target)  # the earlier bundle back in its place: a failed deploy destroys nothing
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _open(path: Path, scratch: Path) -> Path:
    if path.is_dir():
        return path
    if path.is_file() and path.name.endswith(".tar.gz"):
        try:
            with tarfile.open(path) as handle:
                handle.extractall(scratch, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:  # not a tar, truncated, or a member the filter refuses
            first = first_line(exc)
            raise ExportError(f"{path} cannot be unpacked as a bundle (not a .tar.gz, or damaged): {first}",
                              "copy the .tar.gz again, or give the bundle directory") from None
        children = [c for c in scratch.iterdir() if c.is_dir()]
        if len(children) == 1:
            return children[0]
    raise ExportError(f"{path} is not a bundle directory or .tar.gz", "give the path `edgewise deploy` printed")


def verify_bundle(path: str | os.PathLike[str], key: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Check the manifest (complete, every path inside the bundle), every file's sha256 and size against it, the
    signature with `key` (a key file) when given, and the model's output on the probe input.

    A damaged manifest, a changed, missing or extra file, a signature that does not match, or a
    probe output outside the manifest's tolerance raises ExportError naming it.
    """
    with tempfile.TemporaryDirectory() as scratch:
        root = _open(Path(path), Path(scratch))
        try:
            manifest = read_manifest(root)
            signed = check_signature(manifest, read_key(key) if key is not None else None)
            bad = check_files(root, manifest)
        except BundleError as exc:
            raise ExportError(f"bundle {path}: {exc}", "write the bundle again with `edgewise deploy`, or copy it "
                              "again") from None
        folders = {parent.as_posix() for name in manifest["files"] for parent in Path(name).parents} - {"."}
        extra = sorted(name for name in (p.relative_to(root).as_posix() for p in root.rglob("*"))
                       if name not in manifest["files"] and name != "manifest.json" and name not in folders
                       and not any(part in RUN_OUTPUTS for part in name.split("/")))
        if bad or extra:
            what = [f"changed or missing: {', '.join(bad)}"] if bad else []
            what += [f"not in the manifest: {', '.join(extra)}"] if extra else []
            raise ExportError(f"bundle {path} does not match its manifest ({'; '.join(what)})",
                              "rebuild the bundle with `edgewise deploy`, or copy it again")
        session = open_session(root / manifest["model"], fast=True)
        probe = np.load(root / manifest["probe"]["input"])
        expected = np.load(root / manifest["probe"]["output"])
        got = run_samples(session, probe)[0]
        rel = relative_difference(got, expected) if got.shape == expected.shape else float("inf")
        if rel > manifest["probe"]["rtol"]:
            raise ExportError(f"bundle {path}: the probe output differs by {rel:.2e} (tolerance "
                              f"{manifest['probe']['rtol']:.0e})", "rebuild the bundle; the model file is not the one "
                              "the probe was recorded with")
        return {"files": len(manifest["files"]), "probe_rel_diff": rel, "name": manifest["name"], "signature": signed}


def copy_to(bundle_path: str | os.PathLike[str], destination: str) -> list[str]:
    """Copy a bundle to `user@host:/path` with the system's scp (no new dependency); returns the command run."""
    if ":" not in destination:
        raise ExportError(f"--to {destination!r} is not user@host:/path", "give e.g. --to nvidia@jetson:/home/nvidia")
    if shutil.which("scp") is None:
        raise ExportError("scp is not installed", "install OpenSSH's client, or copy the bundle by hand")
    command = ["scp", "-r", "-q", str(bundle_path), destination]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise ExportError(f"scp failed: {completed.stderr.strip().splitlines()[-1:] or ['']}",
                          "check the host, the path and your ssh keys")
    return command


def write_key(path: str | os.PathLike[str]) -> Path:
    """Write a new random 32-byte signing key (hex) to `path`, readable and writable by its owner alone; an existing
    file is refused, not overwritten."""
    import secrets

    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ExportError(f"{target} exists", "choose a new file for the key; an old key is never overwritten") \
            from None
    except OSError as exc:
        raise ExportError(f"cannot write the key to {target}: {exc.strerror or exc}", "choose a writable place") \
            from None
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    return target
