"""Pipeline: the default recipe cold and resumed (as `make demo` runs it), and a sweep on 1 and on 2 workers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.suite import Figure

SWEEP = {"name": "bench-sweep", "models": [{
    "zoo": "digits-mlp", "prune": {"criterion": "lrp", "rate": 0.5, "finetune": {"epochs": 3}},
    "quantize": {"method": "ecqx", "bits": 4, "lambda": 0.05, "train": {"epochs": 3}}, "encode": True}],
    "sweep": {"prune.rate": [0.3, 0.6], "quantize.lambda": [0.02, 0.1]}}


def _edgewise(*args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgewise", *args], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def run() -> list[Figure]:
    """Wall time of the default run with an empty model cache, of the same run again, and of a 4-point sweep."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "EDGEWISE_CACHE": str(Path(tmp) / "cache"), "EDGEWISE_QUIET": "1"}
        cold = _edgewise("run", "--out", str(Path(tmp) / "runs"), env=env)
        resumed = _edgewise("run", "--out", str(Path(tmp) / "runs"), env=env)
        recipe = Path(tmp) / "sweep.yaml"
        recipe.write_text(yaml.safe_dump(SWEEP))
        serial = _edgewise("run", str(recipe), "--jobs", "1", "--out", str(Path(tmp) / "s1"), env=env)
        parallel = _edgewise("run", str(recipe), "--jobs", "2", "--out", str(Path(tmp) / "s2"), env=env)
    return [
        Figure("default recipe, empty model cache", cold, "s", target="< 600 s",
               note="trains, prunes, quantizes, codes, exports, bundles, emulates and benchmarks 3 models"),
        Figure("default recipe again (every stage reused)", resumed, "s", target="< 60 s"),
        Figure("sweep of 4 configurations, --jobs 1", serial, "s"),
        Figure("sweep of 4 configurations, --jobs 2", parallel, "s",
               note=f"{serial / parallel:.2f}x faster than --jobs 1 on {os.cpu_count()} CPUs"),
    ]
