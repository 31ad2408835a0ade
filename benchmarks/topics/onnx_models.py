"""ONNX models from PyPI wheels: Edgewise's median against a plain ONNX Runtime loop, and its counts against onnx-tool.

The models are the ones wheels ship (rapidocr-onnxruntime, silero-vad, nudenet, magika); nothing
is downloaded here. Put their .onnx files in a folder and name it in $EDGEWISE_ONNX_MODELS, e.g.
    pip download --no-deps -d wheels rapidocr-onnxruntime==1.4.4 silero-vad==6.2.3 nudenet==3.4.2 magika==1.0.3
    for w in wheels/*.whl; do unzip -o -j "$w" '*.onnx' -d models; done
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.suite import Figure

# file name -> the inputs it is benchmarked at: the sizes these models are used with
REALISTIC = {
    "ch_PP-OCRv4_det_infer.onnx": ["x:1x3x640x640"],
    "ch_PP-OCRv4_rec_infer.onnx": ["x:1x3x48x320"],
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": ["x:1x3x48x192"],
    "320n.onnx": ["images:1x3x320x320"],
    "model.onnx": ["bytes:1x2048"],
    "silero_vad.onnx": ["input:1x512", "state:2x1x128", "sr:int64=16000"],
    "silero_vad_16k_op15.onnx": ["input:1x512", "state:2x1x128", "sr:int64=16000"],
}
SECONDS = 1.0
ROUNDS = 5  # Edgewise and the plain loop take turns, so both see the machine in the same states


def plain_loop_ms(session: object, feeds: dict[str, np.ndarray], seconds: float = SECONDS) -> float:
    """Median of a plain ONNX Runtime loop: the same feeds, warmed up, each call timed with perf_counter."""
    for _ in range(10):
        session.run(None, feeds)
    times, start = [], time.perf_counter()
    while len(times) < 50 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def medians(path: Path, feeds: dict[str, np.ndarray]) -> tuple[float, float]:
    """Median over ROUNDS of Edgewise's latency median (its harness and session) and of a plain loop's (ONNX Runtime's
    default session), taken in turns."""
    import onnxruntime as ort

    from edgewise.bench.latency import LatencyConfig, measure_latency, onnx_runner

    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours, theirs = [], []
    for _ in range(ROUNDS):
        ours.append(measure_latency(onnx_runner(path, feeds), LatencyConfig(iterations=50, duration_s=SECONDS))
                    ["median_ms"])
        theirs.append(plain_loop_ms(plain, feeds))
    return statistics.median(ours), statistics.median(theirs)


def onnx_tool_counts(path: Path, feeds: dict[str, np.ndarray]) -> tuple[float | None, int | None, str]:
    """onnx-tool's MACs of the layers Edgewise counts (conv, gemm, matmul) and its parameter count, or why not."""
    try:
        from onnx_tool import Model
    except ImportError:
        return None, None, "onnx-tool is not installed"
    from edgewise.bench.counts import COUNTED

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = Model(str(path)).graph
            graph.shape_infer(feeds)
            graph.profile()
    except Exception as exc:  # onnx-tool raises what its node implementations raise
        return None, None, f"onnx-tool fails: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    macs = sum((n.macs[0] if isinstance(n.macs, list) else n.macs) for n in graph.nodemap.values()
               if n.op_type in COUNTED)
    return macs, int(graph.params), ""


def run() -> list[Figure]:
    """Each model in $EDGEWISE_ONNX_MODELS at its realistic inputs: both medians and their ratio, and the counts."""
    from edgewise.bench.benchmark import benchmark, model_inputs
    from edgewise.bench.target_bench import BenchConfig

    folder = os.environ.get("EDGEWISE_ONNX_MODELS")
    if not folder or not Path(folder).is_dir():
        return [Figure("third-party models benchmarked", 0, "models", "measured", ">= 6",
                       "set EDGEWISE_ONNX_MODELS to a folder of the wheels' .onnx files (see this module's doc)")]
    figures = []
    for name, inputs in REALISTIC.items():
        path = Path(folder) / name
        if not path.is_file():
            continue
        record = benchmark(path, "x86-host", BenchConfig(iterations=50, duration_s=SECONDS, memory_runs=3),
                           inputs=inputs)
        feeds = model_inputs(path, inputs).feeds
        ours, plain = medians(path, feeds)
        counts = record["counts"]
        tool_macs, tool_params, why = onnx_tool_counts(path, feeds)
        shape = " ".join(inputs)
        figures += [
            Figure(f"{name} Edgewise median", ours, "ms", "measured", "", f"{shape}; median of {ROUNDS} rounds; "
                   f"`edgewise bench` alone: {record['latency']['median_ms']:.4g} ms"),
            Figure(f"{name} plain ONNX Runtime loop median", plain, "ms", "measured", "",
                   f"ratio {ours / plain:.3f} (target 0.95-1.05)"),
            Figure(f"{name} MACs", counts["macs_counted"], "MACs", "counted", "",
                   f"onnx-tool {tool_macs:,.0f}" if tool_macs is not None else why),
            Figure(f"{name} weights", counts["weight_bytes"], "bytes", "counted", "",
                   f"{counts['parameters']:,} parameters; onnx-tool {tool_params:,} parameters; file "
                   f"{path.stat().st_size:,} B" if tool_params is not None else f"file {path.stat().st_size:,} B"),
        ]
    return figures
