"""What a run ran on: machine, CPU, memory, thread settings and the versions of the key libraries."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

from edgewise.board.system import procfs

KEY_PACKAGES = ("edgewise", "torch", "torchvision", "zennit", "nncodec", "torch-pruning", "onnx", "onnxruntime",
                "onnxscript", "numpy", "scikit-learn")


def library_versions(packages: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when it is not installed), read without importing it."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    """The CPU's model name from cpuinfo (under the kit's procfs root), or platform.processor() where there is none."""
    try:
        with open(procfs() / "cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_environment() -> dict[str, Any]:
    """A JSON-able description of this machine and process for manifests and reports."""
    import psutil

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": psutil.virtual_memory().total,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "versions": library_versions(),
    }
