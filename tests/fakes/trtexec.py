#!/usr/bin/env python3
"""A stand-in for NVIDIA's trtexec: prints its real report formats and writes or loads an engine.

FAKE_TRTEXEC_FORMAT picks the report: trt10 (TensorRT 10.3's one-line groups, the default), trt7
(TensorRT 7.1's headed blocks, JetPack 4.x) or empty (a run that printed no figures). With
FAKE_TRTEXEC_REALTIME=1 a run takes its --duration in wall time and reports that walltime, so a
power sensor beside it sees the run (2891.43 inferences per second).
"""

import os
import sys
import time
from pathlib import Path

args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:] if "=" in a)
flags = [a for a in sys.argv[1:] if "=" not in a]
form = os.environ.get("FAKE_TRTEXEC_FORMAT", "trt10")
stamp = "[11/21/2026-10:47:59]"
command = " ".join(sys.argv[1:])
banner = "" if form == "trt7" else " [TensorRT v100300]"
print(f"&&&& RUNNING TensorRT.trtexec{banner} # trtexec {command}")
source = args.get("loadEngine") or args.get("onnx", "")
if not Path(source).is_file():
    print(f"{stamp} [E] Could not open file {source}")
    print(f"&&&& FAILED TensorRT.trtexec{banner} # trtexec {command}")
    sys.exit(1)
walltime = 3.00128
if os.environ.get("FAKE_TRTEXEC_REALTIME") == "1":
    walltime = float(args.get("duration", "3"))
    time.sleep(walltime)
if form == "empty":
    print(f"&&&& PASSED TensorRT.trtexec{banner} # trtexec {command}")
    sys.exit(0)
if form == "trt7":
    runs = round(2891.43 * walltime)
    for _ in range(runs // 10):
        print(f"{stamp} [I] Average on 10 runs - GPU latency: 0.32 ms - Host latency: 0.34 ms (end to end 0.35 ms, "
              "enqueue 0.07 ms)")
    for line in ("Host Latency", "min: 0.326416 ms (end to end 0.33 ms)", "max: 0.615234 ms (end to end 0.62 ms)",
                 "mean: 0.341248 ms (end to end 0.35 ms)", "median: 0.338867 ms (end to end 0.34 ms)",
                 "percentile: 0.387939 ms at 99% (end to end 0.39 ms at 99%)", "throughput: 0 qps",
                 f"walltime: {walltime} s", "GPU Compute", "min: 0.312256 ms", "median: 0.323975 ms",
                 "percentile: 0.371582 ms at 99%", "total compute time: 2.83051 s"):
        print(f"{stamp} [I] {line}")
    print(f"&&&& PASSED TensorRT.trtexec # trtexec {command}")
    sys.exit(0)
print(f"{stamp} [I] === Device Information ===")
print(f"{stamp} [I] Selected Device: Orin")
print(f"{stamp} [I] TensorRT version: 10.3.0")
print(f"{stamp} [I] [TRT] [MemUsageChange] Init CUDA: CPU +2, GPU +0, now: CPU 19, GPU 423 (MiB)")
print(f"{stamp} [I] Precision flags: {' '.join(flags)}")
if "saveEngine" in args:
    Path(args["saveEngine"]).write_bytes(b"\0" * 1311744)
print(f"{stamp} [I] Engine built in 12.5731 sec.")
print(f"{stamp} [I] Created engine with size: 1.25098 MiB")
print(f"{stamp} [I] === Performance summary ===")
print(f"{stamp} [I] Throughput: 2891.43 qps")
print(f"{stamp} [I] Latency: min = 0.326416 ms, max = 0.615234 ms, mean = 0.341248 ms, median = 0.338867 ms, "
      "percentile(90%) = 0.348633 ms, percentile(95%) = 0.352539 ms, percentile(99%) = 0.387939 ms")
print(f"{stamp} [I] Enqueue Time: min = 0.0620117 ms, max = 0.210449 ms, mean = 0.0701535 ms, "
      "median = 0.0686035 ms, "
      "percentile(90%) = 0.0749512 ms, percentile(95%) = 0.0800781 ms, percentile(99%) = 0.112305 ms")
print(f"{stamp} [I] H2D Latency: min = 0.00756836 ms, max = 0.0292969 ms, mean = 0.00892563 ms, "
      "median = 0.00878906 ms, "
      "percentile(90%) = 0.00976562 ms, percentile(95%) = 0.0100098 ms, percentile(99%) = 0.0117188 ms")
print(f"{stamp} [I] GPU Compute Time: min = 0.312256 ms, max = 0.598633 ms, mean = 0.326157 ms, "
      "median = 0.323975 ms, "
      "percentile(90%) = 0.333252 ms, percentile(95%) = 0.336426 ms, percentile(99%) = 0.371582 ms")
print(f"{stamp} [I] D2H Latency: min = 0.00415039 ms, max = 0.0136719 ms, mean = 0.00616597 ms, "
      "median = 0.0057373 ms, "
      "percentile(90%) = 0.00683594 ms, percentile(95%) = 0.00732422 ms, percentile(99%) = 0.0090332 ms")
print(f"{stamp} [I] Total Host Walltime: {walltime} s")
print(f"{stamp} [I] Total GPU Compute Time: 2.83051 s")
print(f"{stamp} [W] * GPU compute time is unstable, with coefficient of variance = 3.21%.")
print(f"{stamp} [I] Explanations of the performance metrics are printed in the verbose logs.")
print(f"&&&& PASSED TensorRT.trtexec [TensorRT v100300] # trtexec {command}")
