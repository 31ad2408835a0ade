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

from edgewise.board.errors import StageError

# the child loads the board package from its folder under the name a bundle gives it (as a bundle's run.py does),
# not the kit's packages: what it imports is what serving the model needs, and the baseline imports the same
_SESSION = """
import importlib, importlib.util, sys
spec = importlib.util.spec_from_file_location("edgewise_board", sys.argv[1] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[1]])
sys.modules["edgewise_board"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sys.modules["edgewise_board"])
session_module = importlib.import_module("edgewise_board.session")
import onnx
"""
_CHILD = _SESSION + """
import numpy as np
path, inputs, runs, arena, threads = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1", int(sys.argv[6])
providers = sys.argv[7].split(",") if sys.argv[7] else None
session = session_module.open_session(path, threads=threads or None, arena=arena, providers=providers)
with np.load(inputs) as npz:
    feeds = {name: npz[name] for name in npz.files}
for _ in range(runs):
    session.run(None, feeds)
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
                     arena: bool = True, threads: int | None = None, providers: list[str] | None = None
                     ) -> dict[str, Any]:
    """Peak RSS of a fresh Python that opens `path` as the kit ships it and runs `inputs` `runs` times.

    `inputs` is an .npz with one array per input name (edgewise.bench.inputs.Inputs.save).

    The session is the one every measurement uses (edgewise.board.session: the shipped graph,
    with `threads`, on `providers`). Also reports the baseline of the same interpreter loading the board package
    without a model, so the model's own share can be read off; the arena setting is recorded because
    it inflates the peak.
    """
    from edgewise.board import session

    module = str(Path(session.__file__).parent)
    baseline_code, baseline = python_peak_rss(_SESSION, module)
    code, peak = python_peak_rss(_CHILD, module, str(path), str(inputs), str(runs), "1" if arena else "0",
                                 str(threads or 0), ",".join(providers or []))
    if code != 0 or baseline_code != 0:
        raise StageError(f"the memory probe process failed with exit code {code}", "run the model by hand to see why")
    return {"peak_rss_bytes": peak, "baseline_rss_bytes": baseline, "model_rss_bytes": peak - baseline,
            "model_file_bytes": Path(path).stat().st_size, "cpu_mem_arena": arena, "runs": runs, "threads": threads,
            "kind": "measured", "method": "VmHWM of a fresh child process"}
