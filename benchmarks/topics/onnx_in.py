"""ONNX in at the size of the model: wall time and peak memory of prune, quantize and export (4-bit and W4A8) from
the command line, on torchvision's MobileNetV2 (2.2 M parameters) as torch's current exporter writes it (opset 20,
batch fixed at 1), with data without labels; the import of torch and ONNX Runtime alone is the baseline."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.suite import Figure

IMAGE = (3, 96, 96)
SAMPLES = 40
STEPS = (
    ("import (baseline)", ["-c", "import torch, onnxruntime, edgewise.commands"]),
    ("prune l1 20%", ["-m", "edgewise", "prune", "net.onnx", "--data", "x.npz", "-o", "p.pt", "--criterion", "l1",
                      "--rate", "0.2"]),
    ("quantize uniform 4-bit", ["-m", "edgewise", "quantize", "p.pt", "--data", "x.npz", "-o", "q.pt", "--method",
                                "uniform"]),
    ("export 4-bit", ["-m", "edgewise", "export", "q.pt", "--records", "q.npz", "--data", "x.npz", "-o", "q.onnx"]),
    ("export W4A8", ["-m", "edgewise", "export", "q.pt", "--records", "q.npz", "--data", "x.npz", "-o", "w.onnx",
                     "--w4a8"]),
)


def _measured(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of `python ARGS` as a new process (its own RUSAGE_CHILDREN maximum)."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, sys.executable, *args], cwd=cwd, capture_output=True,
                          text=True, check=True)
    return time.perf_counter() - start, int(done.stdout.strip()) / 1024


def run() -> list[Figure]:
    """Each step's wall time and peak memory, against a minute and a gigabyte over the baseline import."""
    import torch
    import torchvision

    figures = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(torchvision.models.mobilenet_v2(num_classes=10).eval(), (torch.rand(1, *IMAGE),),
                              str(folder / "net.onnx"), external_data=False)
        np.savez(folder / "x.npz", x=np.random.default_rng(0).random((SAMPLES, *IMAGE), dtype=np.float32))
        baseline = None
        for label, args in STEPS:
            seconds, mib = _measured(args, folder)
            if baseline is None:
                baseline = mib
                figures.append(Figure(f"onnx in: {label}", mib, "MiB", note=f"{seconds:.1f} s to import"))
                continue
            figures.append(Figure(f"onnx in: {label}, wall time", seconds, "s", target="< 60 s",
                                  note="MobileNetV2 2.2 M parameters, opset 20, batch 1, 40 unlabelled samples"))
            figures.append(Figure(f"onnx in: {label}, peak memory over the import", mib - baseline, "MiB",
                                  target="< 1024 MiB", note=f"peak {mib:.0f} MiB in all"))
    return figures
