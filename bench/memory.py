"""Peak memory of a fresh child process that loads and runs a model: the child's VmHWM, read at its exit.

Not ru_maxrss from wait4: Linux carries the parent's high-water mark across fork and exec, so a
child of a big process (a test runner with torch loaded) would report the parent's size. VmHWM
belongs to the child's own address space and catches spikes that polling RSS would miss.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

_CHILD = """
import sys, numpy as np, onnxruntime as ort
path, inputs, runs, arena = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
options = ort.SessionOptions()
options.enable_cpu_mem_arena = arena
options.log_severity_level = 3
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"],
                               disabled_optimizers=["MatMulAddFusion"])
x = np.load(inputs)
for _ in range(runs):
    session.run(None, {session.get_inputs()[0].name: x})
"""


_REPORT = """
import sys as _sys
for _line in open("/proc/self/status"):
    if _line.startswith("VmHWM:"):
        _sys.stdout.write("EDGEWISE_VMHWM_KB=" + _line.split()[1] + "\\n")
"""


def python_peak_rss(code: str, *args: str) -> tuple[int, int]:
    """Run `code` in a fresh Python with `args`; return its exit code and its peak resident set (VmHWM) in bytes."""
    completed = subprocess.run([sys.executable, "-c", code + "\n" + _REPORT, *args], capture_output=True, text=True,
                               check=False)
    marks = [line for line in completed.stdout.splitlines() if line.startswith("EDGEWISE_VMHWM_KB=")]
    peak = int(marks[-1].split("=", 1)[1]) * 1024 if marks else 0
    return completed.returncode, peak


def onnx_peak_memory(path: str | os.PathLike[str], inputs: str | os.PathLike[str], runs: int = 10,
                     arena: bool = True) -> dict[str, Any]:
    """Peak RSS of a fresh Python that opens `path` with ONNX Runtime and runs `inputs` (.npy) `runs` times.

    Also reports the baseline of the same interpreter importing onnxruntime and numpy only, so the
    model's own share can be read off; the arena setting is recorded because it inflates the peak.
    """
    baseline_code, baseline = python_peak_rss("import numpy, onnxruntime")
    code, peak = python_peak_rss(_CHILD, str(path), str(inputs), str(runs), "1" if arena else "0")
    if code != 0 or baseline_code != 0:
        from edgewise.errors import StageError

        raise StageError(f"the memory probe process failed with exit code {code}", "run the model by hand to see why")
    return {"peak_rss_bytes": peak, "baseline_rss_bytes": baseline, "model_rss_bytes": peak - baseline,
            "model_file_bytes": Path(path).stat().st_size, "cpu_mem_arena": arena, "runs": runs,
            "kind": "measured", "method": "VmHWM of a fresh child process"}
