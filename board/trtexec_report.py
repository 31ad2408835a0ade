"""trtexec runs as measurements: its printed report (TensorRT 7 to 10) as numbers, and timing plus energy of an engine.

The standard library only: part of the board package (edgewise.board), which deploy bundles ship
whole; the kit's TensorRT export and on-board benchmark use it too, so a board is timed one way.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

_NUMBER = r"([-+0-9.eE]+)"
# TensorRT 8+ prints one line per statistic group; TensorRT 7 a heading followed by one line per statistic
_GROUPS = (("latency", "Latency", "Host Latency"), ("gpu_compute", "GPU Compute Time", "GPU Compute"),
           ("enqueue", "Enqueue Time", "Enqueue Time"), ("h2d", "H2D Latency", None), ("d2h", "D2H Latency", None))
_TRT7_STAT = re.compile(r"\]\s+(min|max|mean|median|percentile):\s+" + _NUMBER + r" ms(?: at ([\d.]+)%)?")


class TrtexecError(Exception):
    """trtexec failed, or printed no figures: the message says which and what it printed last."""


def tensorrt_version(text: str) -> str | None:
    """The TensorRT version a report names, always as major.minor.patch.

    Banners encode it as one number: major*1000 + minor*100 + patch up to TensorRT 9 (v8601:
    8.6.1), major*10000 + minor*100 + patch from TensorRT 10 (v100300: 10.3.0); newer reports
    also print it dotted ('TensorRT version: 8.6.3').
    """
    dotted = re.search(r"TensorRT version: (\d+)\.(\d+)\.(\d+)", text)
    if dotted:
        return ".".join(dotted.groups())
    banner = re.search(r"\[TensorRT v(\d+)\]", text)
    if not banner:
        return None
    n = int(banner.group(1))
    major, rest = (n // 10000, n % 10000) if n >= 100000 else (n // 1000, n % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def _one_line(text: str, label: str) -> dict[str, float] | None:
    m = re.search(r"\] " + re.escape(label) + r": (.*)$", text, re.MULTILINE)
    if not m:
        return None
    stats = {}
    for part in m.group(1).split(","):
        pm = re.match(r"\s*(min|max|mean|median|percentile\(([\d.]+)%\))\s*=?\s*" + _NUMBER + " ms", part)
        if pm:
            stats[f"p{float(pm.group(2)):g}" if pm.group(2) else pm.group(1)] = float(pm.group(3))
    return {f"{k}_ms": v for k, v in stats.items()} or None


def _heading_block(lines: list[str], heading: str) -> dict[str, float] | None:
    """TensorRT 7: the statistic lines under a `[I] <heading>` line, up to the next heading."""
    for i, line in enumerate(lines):
        if re.search(r"\]\s+" + re.escape(heading) + r"\s*$", line):
            stats = {}
            for below in lines[i + 1:]:
                m = _TRT7_STAT.search(below)
                if not m:
                    if re.search(r"\]\s+(throughput|walltime|total compute time):", below):
                        continue
                    break
                key = f"p{float(m.group(3)):g}" if m.group(1) == "percentile" and m.group(3) else m.group(1)
                stats[f"{key}_ms"] = float(m.group(2))
            return stats or None
    return None


def parse_trtexec(text: str) -> dict[str, Any]:
    """trtexec's printed report as numbers: throughput, latency, GPU compute, enqueue and copy statistics (ms), wall
    and compute totals (s), engine size (MiB), build time and the TensorRT version (major.minor.patch).

    Reads TensorRT 8 to 10's one-line groups and TensorRT 7's headed blocks ('Host Latency' then
    'min: 1.06 ms (end to end 1.07 ms)' lines). A figure the report does not hold is None;
    TensorRT 7.x prints 'throughput: 0 qps' (a known bug), read as None.
    """
    lines = text.splitlines()
    out: dict[str, Any] = {"passed": "&&&& PASSED" in text, "failed": "&&&& FAILED" in text,
                           "tensorrt_version": tensorrt_version(text)}
    m = re.search(r"\] Throughput: " + _NUMBER + " qps", text, re.IGNORECASE)
    out["throughput_qps"] = float(m.group(1)) if m and float(m.group(1)) > 0 else None
    for key, label, heading in _GROUPS:
        out[key] = _one_line(text, label) or (_heading_block(lines, heading) if heading else None)
    for key, pattern in (("total_host_walltime_s", r"(?:Total Host Walltime|\] walltime): " + _NUMBER + " s"),
                         ("total_gpu_compute_s", r"(?:Total GPU Compute Time|\] total compute time): " + _NUMBER
                          + " s"),
                         ("build_s", r"Engine built in " + _NUMBER + " sec")):
        m = re.search(pattern, text)
        out[key] = float(m.group(1)) if m else None
    m = re.search(r"(?:Created engine with size|Loaded engine size): " + _NUMBER + r" (MiB|MB)", text)
    out["engine_mib"] = float(m.group(1)) if m else None
    runs = [int(n) for n in re.findall(r"Average on (\d+) runs", text)]
    out["traced_runs"] = sum(runs) or None
    return out


def has_figures(report: dict[str, Any]) -> bool:
    """Whether a parsed report holds any timing figure (a run that printed none measured nothing)."""
    return any(report[k] for k in ("throughput_qps", "latency", "gpu_compute"))


def inferences(report: dict[str, Any]) -> int | None:
    """How many inferences a timing run made: throughput x wall time, or the traced runs where throughput is
    missing (TensorRT 7)."""
    if report["throughput_qps"] and report["total_host_walltime_s"]:
        return round(report["throughput_qps"] * report["total_host_walltime_s"])
    return report["traced_runs"]


def run_trtexec(command: Sequence[str], cwd: str | Path | None = None, timeout_s: float = 3600) -> dict[str, Any]:
    """Run a trtexec command (its first word the executable's path) and return its parsed report.

    A non-zero exit, a FAILED verdict, or a report without a single timing figure raises
    TrtexecError with trtexec's last line, so a run that measured nothing never becomes a result.
    """
    completed = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
                               check=False)
    output = completed.stdout + completed.stderr
    report = parse_trtexec(output)
    last = (output.strip().splitlines()[-1:] or [""])[0]
    if completed.returncode != 0 or report["failed"] or not report["passed"]:
        raise TrtexecError(f"trtexec failed (exit {completed.returncode}): {last}")
    if not has_figures(report):
        raise TrtexecError(f"trtexec printed no throughput or latency figures (last line: {last})")
    return report


def latency_of(report: dict[str, Any]) -> dict[str, Any]:
    """A report's latency as the kit records latency: host latency statistics (H2D + compute + D2H) in ms, with
    throughput; GPU compute time alone where the report has no host latency."""
    stats = report["latency"] or report["gpu_compute"] or {}
    return {**stats, "throughput_per_s": report["throughput_qps"], "kind": "measured",
            "statistic": "host latency (H2D + GPU compute + D2H)" if report["latency"] else "GPU compute time"}


def timing_command(build: Sequence[str], engine: str, seconds: float) -> list[str]:
    """The command that times a built engine for `seconds`: the build command's executable and shapes, the engine
    loaded instead of built."""
    shapes = [a.replace("--optShapes=", "--shapes=") for a in build if a.startswith(("--optShapes=", "--shapes="))]
    return [build[0], f"--loadEngine={engine}", *shapes, "--warmUp=200", f"--duration={seconds:g}",
            "--iterations=1"]


def measure_trtexec(command: Sequence[str], engine: str, cwd: str | Path | None,
                    energy: Callable[[Callable[[float], int]], dict[str, Any]] | None = None,
                    ram: AbstractContextManager[Any] | None = None) -> dict[str, Any]:
    """Build and time an engine with `command` (it must --saveEngine=`engine`), then, given `energy`, measure
    energy per inference over timing runs of the saved engine.

    `energy(run_for)` gets a function that times the engine for s seconds and returns the
    inferences made (a marginal-energy measurement); `ram` (a system-RAM peak context: Jetson GPUs
    allocate from system RAM) wraps the build-and-time run. Returns the report, the latency
    record, and the energy record or None.
    """
    with ram if ram is not None else nullcontext():
        report = run_trtexec(command, cwd)

    def run_for(seconds: float) -> int:
        timed = run_trtexec(timing_command(command, engine, seconds), cwd)
        return inferences(timed) or 0

    return {"report": report, "latency": latency_of(report), "energy": energy(run_for) if energy else None}
