#!/usr/bin/env python3
"""A stand-in for NVIDIA's trtexec that prints its real report format (TensorRT 10.3 layout) and writes an engine."""

import sys
from pathlib import Path

args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:] if "=" in a)
flags = [a for a in sys.argv[1:] if "=" not in a]
stamp = "[11/21/2026-10:47:59]"
command = " ".join(sys.argv[1:])
print(f"&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec {command}")
print(f"{stamp} [I] === Model Options ===")
print(f"{stamp} [I] Format: ONNX")
print(f"{stamp} [I] Model: {args.get('onnx', '')}")
if not Path(args.get("onnx", "")).is_file():
    print(f"{stamp} [E] Could not open file {args.get('onnx')}")
    print(f"&&&& FAILED TensorRT.trtexec [TensorRT v100300] # trtexec {command}")
    sys.exit(1)
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
print(f"{stamp} [I] Total Host Walltime: 3.00128 s")
print(f"{stamp} [I] Total GPU Compute Time: 2.83051 s")
print(f"{stamp} [W] * GPU compute time is unstable, with coefficient of variance = 3.21%.")
print(f"{stamp} [I] Explanations of the performance metrics are printed in the verbose logs.")
print(f"&&&& PASSED TensorRT.trtexec [TensorRT v100300] # trtexec {command}")
