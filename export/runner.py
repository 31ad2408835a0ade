"""Board-side runner of an Edgewise deploy bundle: check the files, run the probe, benchmark, write a result JSON.

This file is copied into every bundle as `run.py` and needs only the Python standard library,
numpy, and onnxruntime (with the kit's session module, shipped beside it as edgewise_session.py)
or TensorRT's `trtexec`; it imports nothing else from Edgewise. Usage on the
board:  python3 run.py [--backend auto|onnxruntime|trtexec] [--duration 10] [--iterations 200]
Writes result.json beside itself (or --out), which `edgewise bench` on the host reads back.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULT_FORMAT = "edgewise-bundle-result/1"
_STAT = r"([-+0-9.eE]+)"


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_files(root: Path, manifest: dict) -> list[str]:
    """Names of bundle files whose sha256 or size differs from the manifest, or that are missing."""
    bad = []
    for name, entry in manifest["files"].items():
        path = root / name
        if not path.is_file() or path.stat().st_size != entry["bytes"] or sha256(path) != entry["sha256"]:
            bad.append(name)
    return bad


def latency_stats(seconds: list[float], wall: float) -> dict:
    """Named statistics of per-iteration latencies (milliseconds) and throughput over the timed wall time."""
    ms = sorted(s * 1e3 for s in seconds)

    def pct(p: float) -> float:
        k = (len(ms) - 1) * p / 100
        lo, hi = math.floor(k), math.ceil(k)
        return ms[lo] + (ms[hi] - ms[lo]) * (k - lo)

    mean = statistics.fmean(ms)
    std = statistics.pstdev(ms)
    return {"iterations": len(ms), "min_ms": ms[0], "mean_ms": mean, "std_ms": std, "median_ms": pct(50),
            "p90_ms": pct(90), "p95_ms": pct(95), "p99_ms": pct(99), "max_ms": ms[-1],
            "cv": std / mean if mean else 0.0, "throughput_per_s": len(ms) / wall if wall else 0.0}


def parse_trtexec(text: str) -> dict:
    """trtexec's printed report as numbers: throughput, latency and GPU compute statistics, engine size, version."""
    out: dict = {"passed": "&&&& PASSED" in text, "failed": "&&&& FAILED" in text}
    m = re.search(r"\[TensorRT v(\d+)\]", text) or re.search(r"TensorRT version: ([\d.]+)", text)
    out["tensorrt_version"] = m.group(1) if m else None
    m = re.search(r"Throughput: " + _STAT + " qps", text)
    out["throughput_qps"] = float(m.group(1)) if m else None
    for key, label in (("latency", "Latency"), ("gpu_compute", "GPU Compute Time"), ("enqueue", "Enqueue Time"),
                       ("h2d", "H2D Latency"), ("d2h", "D2H Latency")):
        m = re.search(r"\] " + re.escape(label) + r": (.*)$", text, re.MULTILINE)
        if not m:
            out[key] = None
            continue
        stats = {}
        for part in m.group(1).split(","):
            pm = re.match(r"\s*(min|max|mean|median|percentile\(([\d.]+)%\))\s*=?\s*" + _STAT + " ms", part)
            if pm:
                stats[f"p{float(pm.group(2)):g}" if pm.group(2) else pm.group(1)] = float(pm.group(3))
        out[key] = {f"{k}_ms": v for k, v in stats.items()}
    for key, pattern in (("total_host_walltime_s", r"Total Host Walltime: " + _STAT + " s"),
                         ("total_gpu_compute_s", r"Total GPU Compute Time: " + _STAT + " s"),
                         ("build_s", r"Engine built in " + _STAT + " sec")):
        m = re.search(pattern, text)
        out[key] = float(m.group(1)) if m else None
    m = re.search(r"(?:Created engine with size|Loaded engine size): " + _STAT + r" (MiB|MB)", text)
    out["engine_mib"] = float(m.group(1)) if m else None
    return out


SESSION_MODULE = "edgewise_session.py"  # the kit's session module, copied into every bundle beside run.py


def _open_session(path: Path, threads: int | None):
    """The session the bundle was verified with: its own copy of the kit's session module, else the kit's."""
    here = Path(__file__).resolve().parent
    if (here / SESSION_MODULE).is_file():
        sys.path.insert(0, str(here))
        from edgewise_session import open_session
    else:
        from edgewise.export.session import open_session
    return open_session(path, threads=threads)


def _run_onnxruntime(root: Path, manifest: dict, args: argparse.Namespace, np) -> dict:
    import onnxruntime as ort

    start = time.perf_counter()
    session = _open_session(root / manifest["model"], args.threads or None)
    created = time.perf_counter() - start
    name = session.get_inputs()[0].name
    probe = np.load(root / manifest["probe"]["input"])
    start = time.perf_counter()
    output = session.run(None, {name: probe})[0]
    first = time.perf_counter() - start
    expected = np.load(root / manifest["probe"]["output"])
    diff = float(np.abs(output - expected).max() / max(float(np.abs(expected).max()), 1e-12))
    sample = probe[:1]
    warm_start, warm_runs = time.perf_counter(), 0
    while warm_runs < args.warmup_iterations or time.perf_counter() - warm_start < args.warmup_s:
        session.run(None, {name: sample})
        warm_runs += 1
    times = []
    wall_start = time.perf_counter()
    while len(times) < args.iterations or time.perf_counter() - wall_start < args.duration:
        t = time.perf_counter()
        session.run(None, {name: sample})
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - wall_start
    return {"backend": "onnxruntime", "onnxruntime": ort.__version__, "session_create_s": created,
            "first_inference_s": first, "warmup_iterations": warm_runs, "probe_rel_diff": diff,
            "probe_ok": diff <= manifest["probe"]["rtol"], "latency": latency_stats(times, wall), "batch": 1,
            "threads": args.threads or None}


def _run_trtexec(root: Path, manifest: dict, args: argparse.Namespace) -> dict:
    executable = shutil.which("trtexec") or "/usr/src/tensorrt/bin/trtexec"
    if not Path(executable).exists():
        raise SystemExit("trtexec not found: install TensorRT (JetPack ships /usr/src/tensorrt/bin/trtexec)")
    command = [executable if part == "trtexec" else part for part in manifest["trtexec"]]
    command += [f"--duration={args.duration}", f"--iterations={args.iterations}"]
    completed = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    report = parse_trtexec(completed.stdout + completed.stderr)
    if completed.returncode != 0 or not report["passed"]:
        raise SystemExit(f"trtexec failed (exit {completed.returncode}); see its output above")
    return {"backend": "tensorrt", "trtexec": report, "command": command}


def main(argv: list[str] | None = None) -> int:
    """Verify, probe and benchmark the bundle in this directory; write the result JSON."""
    root = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description="Run an Edgewise deploy bundle on this device.")
    parser.add_argument("--backend", choices=["auto", "onnxruntime", "trtexec"], default="auto")
    parser.add_argument("--duration", type=float, default=10.0, help="at least this many seconds of timed runs")
    parser.add_argument("--iterations", type=int, default=200, help="at least this many timed runs")
    parser.add_argument("--warmup-s", type=float, default=0.2)
    parser.add_argument("--warmup-iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=root / "result.json")
    args = parser.parse_args(argv)
    manifest = json.loads((root / "manifest.json").read_text())
    bad = check_files(root, manifest)
    if bad:
        print(f"error: bundle files changed or missing: {', '.join(bad)}; copy the bundle again", file=sys.stderr)
        return 2
    backend = args.backend
    if backend == "auto":
        backend = "trtexec" if (shutil.which("trtexec") or Path("/usr/src/tensorrt/bin/trtexec").exists()) \
            else "onnxruntime"
    import numpy as np

    if backend == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        print("error: onnxruntime is not installed for this Python; pip install onnxruntime (onnxruntime-gpu on a "
              "GPU board), or build with TensorRT: --backend trtexec", file=sys.stderr)
        return 2
    measured = _run_trtexec(root, manifest, args) if backend == "trtexec" else _run_onnxruntime(root, manifest,
                                                                                                 args, np)
    result = {"format": RESULT_FORMAT, "bundle": manifest["name"], "model": manifest["model"],
              "kind": "measured", "device": {"hostname": platform.node(), "machine": platform.machine(),
                                             "platform": platform.platform(), "python": platform.python_version(),
                                             "cpus": os.cpu_count()},
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **measured}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    ok = result.get("probe_ok", True)
    print(f"{'ok' if ok else 'PROBE MISMATCH'}: {backend}, result in {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
