"""Board-side runner of an Edgewise deploy bundle: check the files, run the probe, measure, write a result JSON.

Every bundle ships this package whole (edgewise_board/) and a run.py that calls `main` with the
bundle's folder. It needs the Python standard library, numpy, and onnxruntime or TensorRT's
`trtexec`; it imports nothing of Edgewise outside this package. It measures what `edgewise bench`
measures on a board: latency, peak memory (its own VmHWM and, on a Jetson's unified memory, the
system RAM in use above idle) and energy per inference from the board's power rails (INA sysfs,
else tegrastats; RAPL or NVML elsewhere), with the power mode and GPU clocks. Usage on the board:
    python3 run.py [--backend auto|onnxruntime|trtexec] [--duration 10] [--iterations 200]
Writes result.json beside run.py (or --out), which `edgewise bench --result` on the host reads back.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

# the rest of the package is imported where it is used, after the bundle's hashes are checked: a changed file
# is reported as changed, not run
from .manifest import BundleError, check_files, check_signature, read_key, read_manifest

RESULT_FORMAT = "edgewise-bundle-result/1"
# what a run leaves beside the bundle's files without changing them
RUN_OUTPUTS = ("result.json", "__pycache__", "model.engine")
_TRTEXEC_DEFAULT = "/usr/src/tensorrt/bin/trtexec"  # where JetPack installs it, off PATH


def _energy_meter(args: argparse.Namespace) -> tuple[Any, str]:
    """This machine's meter, or why energy is not measured."""
    from .energy import detect_meter

    return (None, "not asked for (--no-energy)") if args.no_energy else detect_meter()


def _unavailable(reason: str) -> dict:
    return {"kind": "unavailable", "reason": reason}


def _run_onnxruntime(root: Path, manifest: dict, args: argparse.Namespace) -> dict:
    import numpy as np
    import onnxruntime as ort

    from . import energy
    from .compare import relative_difference
    from .session import device_providers, fixed_batch, open_session, run_samples
    from .timing import process_memory, time_runs

    meter, why = _energy_meter(args)
    providers = device_providers(args.providers)
    before = process_memory()
    ram = energy.RamPeak()
    with ram:
        start = time.perf_counter()
        session = open_session(root / manifest["model"], threads=args.threads or None, providers=providers)
        created = time.perf_counter() - start
        name = session.get_inputs()[0].name
        probe = np.load(root / manifest["probe"]["input"])
        start = time.perf_counter()
        output = run_samples(session, probe)[0]  # in slices of the batch a file may fix (a vendor file's 1)
        first = time.perf_counter() - start
        feeds = {name: probe[: fixed_batch(session) or 1]}
        latency = time_runs(lambda: session.run(None, feeds), args.warmup_s, args.warmup_iterations,
                            args.iterations, args.duration)
    after = process_memory()
    expected = np.load(root / manifest["probe"]["output"])
    diff = relative_difference(output, expected)
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


def trtexec_measurement(command: list[str], cwd: Path, meter: Any, why: str, window_s: float, repeats: int) -> dict:
    """Build and time the engine with a trtexec `command`, with the system RAM it takes above idle and, given an
    energy `meter`, energy per inference from timing runs of the saved engine (else `why` not).

    Shared by run.py and the kit's on-board benchmark. A failed run, or one without figures,
    raises the reader's TrtexecError.
    """
    from . import energy, trtexec_report

    engine = next((p.split("=", 1)[1] for p in command if p.startswith("--saveEngine=")), "model.engine")
    ram = energy.RamPeak()
    of = lambda run_for: energy.measure_energy(meter, why, run_for, window_s, repeats, whole_runs=True)  # noqa: E731
    measured = trtexec_report.measure_trtexec(command, engine, cwd, of, ram)
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
    from . import trtexec_report

    meter, why = _energy_meter(args)
    try:
        return trtexec_measurement(command, root, meter, why, args.energy_window, args.energy_repeats)
    except trtexec_report.TrtexecError as exc:
        raise SystemExit(f"error: {exc}") from None


def _board() -> dict:
    """The power mode and GPU clocks the figures were taken at (a Jetson; elsewhere the reasons they are unknown)."""
    from . import energy

    return energy.board_state()


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Verify, probe and measure the bundle in `root` (default: the working directory); write the result JSON."""
    root = Path.cwd() if root is None else root
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
