"""Board-side runner of an Edgewise deploy bundle: check the files, run the probe, measure, write a result JSON.

This file is copied into every bundle as `run.py`. It needs the Python standard library, numpy,
and onnxruntime or TensorRT's `trtexec`, plus what the bundle ships beside it: the kit's session
module (edgewise_session.py), its trtexec reader (edgewise_trtexec.py), its energy package
(edgewise_energy/) and the base they stand on (edgewise_errors.py, edgewise_system.py); it imports
nothing else from Edgewise. It measures what `edgewise bench`
measures on a board: latency, peak memory (its own VmHWM and, on a Jetson's unified memory, the
system RAM in use above idle) and energy per inference from the board's power rails (INA sysfs,
else tegrastats; RAPL or NVML elsewhere), with the power mode and GPU clocks. Usage on the board:
    python3 run.py [--backend auto|onnxruntime|trtexec] [--duration 10] [--iterations 200]
Writes result.json beside itself (or --out), which `edgewise bench --result` on the host reads back.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULT_FORMAT = "edgewise-bundle-result/1"
SESSION_MODULE = "edgewise_session.py"  # the kit's session module, copied into every bundle beside run.py
TRTEXEC_MODULE = "edgewise_trtexec.py"  # the kit's trtexec report reader
ENERGY_PACKAGE = "edgewise_energy"  # the kit's energy package (meters, rails, windows)
BASE_MODULES = ("edgewise_errors.py", "edgewise_system.py")  # the kit's base: error types, sysfs/procfs roots
# what a run leaves beside the bundle's files without changing them
RUN_OUTPUTS = ("result.json", "__pycache__", "model.engine")
_TRTEXEC_DEFAULT = "/usr/src/tensorrt/bin/trtexec"  # where JetPack installs it, off PATH


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class BundleError(ValueError):
    """A bundle whose manifest is damaged, incomplete or points outside the bundle, or whose signature does not
    match."""


SIGNATURE = "signature"  # manifest field: HMAC-SHA256 of the rest of the manifest, with the user's key
MIN_KEY_BYTES = 16
_FIELDS = {"format": str, "name": str, "model": str, "inputs": list, "probe": dict, "files": dict}


def inside(root: Path, name: object) -> Path:
    """root/name, refused (BundleError) unless it is a relative path that stays inside the bundle, symbolic links
    resolved: a manifest cannot make the runner read a file elsewhere on the board."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise BundleError(f"the manifest names {name!r}, which is not a path inside the bundle")
    path = root / name
    base = root.resolve()
    if path.resolve() != base and base not in path.resolve().parents:
        raise BundleError(f"{name} leads outside the bundle (a symbolic link to {path.resolve()})")
    return path


def read_manifest(root: Path) -> dict:
    """The bundle's manifest.json, checked: JSON, every field of its format present with its type, every file it
    names inside the bundle and listed with its sha256 and size (the model and probe included)."""
    path = inside(root, "manifest.json")
    if not path.is_file():
        raise BundleError(f"{root} has no manifest.json")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"manifest.json is not JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError("manifest.json does not hold an object")
    for field, kind in _FIELDS.items():
        if not isinstance(manifest.get(field), kind):
            raise BundleError(f"manifest.json has no {field} ({kind.__name__})")
    probe = manifest["probe"]
    if not all(isinstance(probe.get(k), str) for k in ("input", "output")) or \
            not isinstance(probe.get("rtol"), int | float):
        raise BundleError("manifest.json's probe needs input, output and rtol")
    for name, entry in manifest["files"].items():
        inside(root, name)
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or \
                not isinstance(entry.get("bytes"), int):
            raise BundleError(f"manifest.json lists {name} without its sha256 and size")
    for name in (manifest["model"], probe["input"], probe["output"]):
        inside(root, name)
        if name not in manifest["files"]:
            raise BundleError(f"manifest.json names {name} but does not list its hash")
    if manifest.get("trtexec") is not None and not (
            isinstance(manifest["trtexec"], list) and all(isinstance(p, str) for p in manifest["trtexec"])):
        raise BundleError("manifest.json's trtexec is not a command line (a list of strings)")
    return manifest


def check_files(root: Path, manifest: dict) -> list[str]:
    """Names of bundle files whose sha256 or size differs from the manifest, or that are missing."""
    bad = []
    for name, entry in manifest["files"].items():
        path = inside(root, name)
        if not path.is_file() or path.stat().st_size != entry["bytes"] or sha256(path) != entry["sha256"]:
            bad.append(name)
    return bad


def read_key(path: str | os.PathLike[str]) -> bytes:
    """A signing key from its file (its bytes, surrounding whitespace removed; at least 16)."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise BundleError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    if len(key) < MIN_KEY_BYTES:
        raise BundleError(f"the key in {path} has {len(key)} bytes; a signing key has at least {MIN_KEY_BYTES}")
    return key


def signature(manifest: dict, key: bytes) -> str:
    """HMAC-SHA256 (hex) of the manifest without its signature, keys sorted: what a bundle is signed with."""
    import hmac

    body = json.dumps({k: v for k, v in manifest.items() if k != SIGNATURE}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def check_signature(manifest: dict, key: bytes | None) -> str:
    """'verified' when the manifest's signature matches `key`, 'unsigned' or 'not checked (no key)' where there is
    nothing to check; a BundleError when the signature does not match, or a key is given for an unsigned bundle (a
    signed one rewritten without its signature)."""
    import hmac

    signed = manifest.get(SIGNATURE)
    if key is None:
        return "not checked (no key given)" if signed else "unsigned"
    if not isinstance(signed, str):
        raise BundleError("the bundle is not signed, and a key was given to check it with")
    if not hmac.compare_digest(signed, signature(manifest, key)):
        raise BundleError("the manifest's signature does not match the key: the bundle was changed after signing")
    return "verified"


def latency_stats(seconds: list[float], wall: float) -> dict:
    """Named statistics of per-iteration latencies (milliseconds) and throughput over the timed wall time."""
    ms = sorted(s * 1e3 for s in seconds)

    def pct(p: float) -> float:
        k = (len(ms) - 1) * p / 100
        lo, hi = math.floor(k), math.ceil(k)
        return ms[lo] + (ms[hi] - ms[lo]) * (k - lo)

    mean = statistics.fmean(ms)
    std = statistics.pstdev(ms)
    median = pct(50)
    half = len(seconds) // 2
    # the medians of the first and the second half of the runs, in the order they ran: a machine whose speed
    # changed while timing (a throttled clock, a job that started) moves one against the other
    drift = abs(statistics.median(seconds[:half]) - statistics.median(seconds[half:])) * 1e3 / median \
        if half and median else 0.0
    return {"iterations": len(ms), "min_ms": ms[0], "mean_ms": mean, "std_ms": std, "p10_ms": pct(10),
            "median_ms": median, "p90_ms": pct(90), "p95_ms": pct(95), "p99_ms": pct(99), "max_ms": ms[-1],
            "cv": std / mean if mean else 0.0, "spread": (pct(90) - pct(10)) / median if median else 0.0,
            "drift": drift, "throughput_per_s": len(ms) / wall if wall else 0.0}


def time_runs(run: Callable[[], Any], warmup_s: float, warmup_iterations: int, iterations: int, duration_s: float,
              timer: Callable[[Callable[[], Any]], float] | None = None,
              clock: Callable[[], float] = time.perf_counter) -> dict:
    """Warm up (at least `warmup_iterations` runs and `warmup_s`), then time at least `iterations` runs and
    `duration_s` seconds; latency_stats of the timed runs plus the warm-up count.

    `timer(run)` times one run in seconds (default: the wall clock around it; a GPU passes one
    that reads device events).
    """
    def wall(fn: Callable[[], Any]) -> float:
        start = clock()
        fn()
        return clock() - start

    timer = timer or wall
    warm_start, warm = clock(), 0
    while warm < warmup_iterations or clock() - warm_start < warmup_s:
        run()
        warm += 1
    times: list[float] = []
    wall_start = clock()
    while len(times) < iterations or clock() - wall_start < duration_s:
        times.append(timer(run))
    return {**latency_stats(times, clock() - wall_start), "warmup_iterations": warm}


def process_memory() -> dict[str, int]:
    """This process's resident set now and at its peak (VmRSS, VmHWM) in bytes; empty where /proc is missing."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines if line.startswith(("VmRSS", "VmHWM"))}
    return {"rss_bytes": fields.get("VmRSS", 0), "peak_rss_bytes": fields.get("VmHWM", 0)}


def _beside(name: str, kit: str) -> Any:
    """A module the bundle ships beside run.py (by its bundle name), else the kit's own (when run from the kit)."""
    here = Path(__file__).resolve().parent
    if (here / name).exists():
        sys.dont_write_bytecode = True  # the bundle stays as shipped: no __pycache__ among its hashed files
        if str(here) not in sys.path:
            sys.path.insert(0, str(here))
        return importlib.import_module(name.removesuffix(".py"))
    return importlib.import_module(kit)


def _energy_meter(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """The energy package and this machine's meter, or why energy is not measured."""
    energy = _beside(ENERGY_PACKAGE, "edgewise.bench.energy")
    if args.no_energy:
        return energy, None, "not asked for (--no-energy)"
    meter, reason = energy.detect_meter()
    return energy, meter, reason


def _unavailable(reason: str) -> dict:
    return {"kind": "unavailable", "reason": reason}


def _run_onnxruntime(root: Path, manifest: dict, args: argparse.Namespace) -> dict:
    import numpy as np
    import onnxruntime as ort

    session_module = _beside(SESSION_MODULE, "edgewise.export.session")
    energy, meter, why = _energy_meter(args)
    providers = session_module.device_providers(args.providers)
    before = process_memory()
    ram = energy.RamPeak()
    with ram:
        start = time.perf_counter()
        session = session_module.open_session(root / manifest["model"], threads=args.threads or None,
                                              providers=providers)
        created = time.perf_counter() - start
        name = session.get_inputs()[0].name
        probe = np.load(root / manifest["probe"]["input"])
        start = time.perf_counter()
        output = session.run(None, {name: probe})[0]
        first = time.perf_counter() - start
        feeds = {name: probe[:1]}
        latency = time_runs(lambda: session.run(None, feeds), args.warmup_s, args.warmup_iterations,
                            args.iterations, args.duration)
    after = process_memory()
    expected = np.load(root / manifest["probe"]["output"])
    diff = float(np.abs(output - expected).max() / max(float(np.abs(expected).max()), 1e-12))
    memory = (_unavailable("no /proc/self/status on this system") if not after else
              {"kind": "measured", "peak_rss_bytes": after["peak_rss_bytes"],
               "model_rss_bytes": after["peak_rss_bytes"] - before["rss_bytes"],
               "model_file_bytes": (root / manifest["model"]).stat().st_size, **ram.record(),
               "method": "VmHWM of the runner, less its resident set before the model; system RAM above idle"})
    measured = energy.measure_energy(meter, why, lambda: session.run(None, feeds), args.energy_window,
                                     args.energy_repeats)
    return {"backend": "onnxruntime", "onnxruntime": ort.__version__, "providers": session.get_providers(),
            "session_create_s": created, "first_inference_s": first, "probe_rel_diff": diff,
            "probe_ok": diff <= manifest["probe"]["rtol"], "latency": {"kind": "measured", **latency},
            "memory": memory, "energy": measured, "batch": 1, "threads": args.threads or None}


def trtexec_path() -> str | None:
    """trtexec on PATH, else where JetPack installs it, else None."""
    return shutil.which("trtexec") or (_TRTEXEC_DEFAULT if Path(_TRTEXEC_DEFAULT).exists() else None)


def trtexec_measurement(command: list[str], cwd: Path, energy: Any, meter: Any, why: str, window_s: float,
                        repeats: int) -> dict:
    """Build and time the engine with a trtexec `command`, with the system RAM it takes above idle and, given a
    `meter` of the `energy` package, energy per inference from timing runs of the saved engine (else why not).

    Shared by run.py and the kit's on-board benchmark. A failed run, or one without figures,
    raises the reader's TrtexecError.
    """
    reader = _beside(TRTEXEC_MODULE, "edgewise.export.trtexec_report")
    engine = next((p.split("=", 1)[1] for p in command if p.startswith("--saveEngine=")), "model.engine")
    ram = energy.RamPeak()
    of = lambda run_for: energy.measure_energy(meter, why, run_for, window_s, repeats, whole_runs=True)  # noqa: E731
    measured = reader.measure_trtexec(command, engine, cwd, of, ram)
    memory = ({"kind": "measured", **ram.record(), "method": "system RAM above idle while trtexec built and timed "
               "the engine (a Jetson's GPU allocates from it)"} if not ram.reason else _unavailable(ram.reason))
    return {"backend": "tensorrt", "trtexec": measured["report"], "command": command, "latency": measured["latency"],
            "memory": memory, "energy": measured["energy"] or _unavailable(why)}


def _run_trtexec(root: Path, manifest: dict, args: argparse.Namespace) -> dict:
    if not manifest.get("trtexec"):
        raise SystemExit(f"error: this bundle has no TensorRT engine: {manifest.get('no_tensorrt', 'no command')}")
    executable = trtexec_path()
    if executable is None:
        raise SystemExit("error: trtexec not found: install TensorRT (JetPack ships /usr/src/tensorrt/bin/trtexec)")
    command = [executable if part == "trtexec" else part for part in manifest["trtexec"]
               if not part.startswith(("--duration=", "--iterations="))]
    command += [f"--duration={args.duration:g}", f"--iterations={args.iterations}"]
    energy, meter, why = _energy_meter(args)
    reader = _beside(TRTEXEC_MODULE, "edgewise.export.trtexec_report")
    try:
        return trtexec_measurement(command, root, energy, meter, why, args.energy_window, args.energy_repeats)
    except reader.TrtexecError as exc:
        raise SystemExit(f"error: {exc}") from None


def _board() -> dict:
    """The power mode and GPU clocks the figures were taken at (a Jetson; elsewhere the reasons they are unknown)."""
    return _beside(ENERGY_PACKAGE, "edgewise.bench.energy").board_state()


def main(argv: list[str] | None = None) -> int:
    """Verify, probe and measure the bundle in this directory; write the result JSON."""
    root = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description="Run an Edgewise deploy bundle on this device.")
    parser.add_argument("--backend", choices=["auto", "onnxruntime", "trtexec"], default="auto")
    parser.add_argument("--providers", default="auto",
                        help="ONNX Runtime execution providers, comma-separated, or auto (TensorRT, CUDA, CPU as "
                             "installed)")
    parser.add_argument("--duration", type=float, default=10.0, help="at least this many seconds of timed runs")
    parser.add_argument("--iterations", type=int, default=200, help="at least this many timed runs")
    parser.add_argument("--warmup-s", type=float, default=0.2)
    parser.add_argument("--warmup-iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--energy-window", type=float, default=2.0, help="seconds per energy window")
    parser.add_argument("--energy-repeats", type=int, default=3, help="energy windows to take the median of")
    parser.add_argument("--no-energy", action="store_true", help="skip energy and board state")
    parser.add_argument("--out", type=Path, default=root / "result.json")
    parser.add_argument("--key", type=Path, default=os.environ.get("EDGEWISE_BUNDLE_KEY") or None,
                        help="signing key file: refuse the bundle unless its manifest is signed with it (default "
                             "$EDGEWISE_BUNDLE_KEY)")
    args = parser.parse_args(argv)
    try:
        manifest = read_manifest(root)
        signed = check_signature(manifest, read_key(args.key) if args.key else None)
        bad = check_files(root, manifest)
    except BundleError as exc:
        print(f"error: {exc}; copy the bundle again (or write it again with edgewise deploy)", file=sys.stderr)
        return 2
    if bad:
        print(f"error: bundle files changed or missing: {', '.join(bad)}; copy the bundle again", file=sys.stderr)
        return 2
    backend = args.backend
    if backend == "auto":
        backend = "trtexec" if trtexec_path() and manifest.get("trtexec") else "onnxruntime"
    if backend == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        print("error: onnxruntime is not installed for this Python; pip install onnxruntime (onnxruntime-gpu on a "
              "GPU board), or build with TensorRT: --backend trtexec", file=sys.stderr)
        return 2
    measured = _run_trtexec(root, manifest, args) if backend == "trtexec" else _run_onnxruntime(root, manifest, args)
    result = {"format": RESULT_FORMAT, "bundle": manifest["name"], "model": manifest["model"],
              "kind": "measured", "signature": signed,
              "device": {"hostname": platform.node(), "machine": platform.machine(),
                         "platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
              "board": _board(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **measured}
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    ok = result.get("probe_ok", True)
    print(f"{'ok' if ok else 'PROBE MISMATCH'}: {backend}, result in {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
