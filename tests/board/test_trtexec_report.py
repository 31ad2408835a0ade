import subprocess

import pytest

from edgewise.board.trtexec_report import (
    has_figures,
    inferences,
    latency_of,
    parse_trtexec,
    tensorrt_version,
    timing_command,
)

STAMP = "[06/12/2022-22:34:00] [I]"
# TensorRT 7.1's report layout (JetPack 4.x): a heading line, then one statistic per line
TRT7 = "\n".join(f"{STAMP} {line}" for line in [
    "Average on 10 runs - GPU latency: 1.56245 ms - Host latency: 1.65786 ms (end to end 2.76426 ms, enqueue 0.94 ms)",
    "Average on 10 runs - GPU latency: 1.56167 ms - Host latency: 1.65811 ms (end to end 3.02041 ms, enqueue 0.93 ms)",
    "Host Latency",
    "min: 1.64058 ms (end to end 1.66368 ms)",
    "max: 6.2915 ms (end to end 7.65552 ms)",
    "mean: 1.66069 ms (end to end 3.00909 ms)",
    "median: 1.65601 ms (end to end 3.01636 ms)",
    "percentile: 1.67065 ms at 99% (end to end 3.03931 ms at 99%)",
    "throughput: 0 qps",
    "walltime: 3.00461 s",
    "Enqueue Time",
    "min: 0.885742 ms",
    "median: 0.935547 ms",
    "GPU Compute",
    "min: 1.54541 ms",
    "max: 6.19434 ms",
    "mean: 1.56049 ms",
    "median: 1.55664 ms",
    "percentile: 1.57495 ms at 99%",
    "total compute time: 2.99582 s",
]) + "\n&&&& PASSED TensorRT.trtexec # ./trtexec --loadEngine=m.engine\n"


def test_parser_reads_the_fake_report_exactly(fake_trtexec, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    text = subprocess.run([str(fake_trtexec), f"--onnx={tmp_path / 'm.onnx'}", "--fp16"], capture_output=True,
                          text=True, check=True).stdout
    report = parse_trtexec(text)
    assert report["passed"] and not report["failed"] and report["tensorrt_version"] == "10.3.0"
    assert report["throughput_qps"] == 2891.43
    assert report["latency"] == {"min_ms": 0.326416, "max_ms": 0.615234, "mean_ms": 0.341248, "median_ms": 0.338867,
                                 "p90_ms": 0.348633, "p95_ms": 0.352539, "p99_ms": 0.387939}
    assert report["gpu_compute"]["median_ms"] == 0.323975 and report["gpu_compute"]["p99_ms"] == 0.371582
    assert report["h2d"]["mean_ms"] == 0.00892563 and report["d2h"]["max_ms"] == 0.0136719
    assert report["total_host_walltime_s"] == 3.00128 and report["total_gpu_compute_s"] == 2.83051
    assert report["engine_mib"] == 1.25098 and report["build_s"] == 12.5731


def test_older_report_without_percentiles_90_95():
    text = ("[07/28/2022-16:00:55] [I] Throughput: 716.632 qps\n"
            "[07/28/2022-16:00:55] [I] Latency: min = 1.3476 ms, max = 1.5657 ms, mean = 1.38629 ms, "
            "median = 1.38037 ms, percentile(99%) = 1.55853 ms\n"
            "[07/28/2022-16:00:55] [I] [TRT] Loaded engine size: 245 MB\n"
            "&&&& PASSED TensorRT.trtexec [TensorRT v8402]\n")
    report = parse_trtexec(text)
    assert report["latency"]["p99_ms"] == 1.55853 and "p90_ms" not in report["latency"]
    assert report["engine_mib"] == 245.0 and report["gpu_compute"] is None


def test_tensorrt_7_multi_line_report():
    report = parse_trtexec(TRT7)
    assert report["passed"] and has_figures(report)
    assert report["latency"] == {"min_ms": 1.64058, "max_ms": 6.2915, "mean_ms": 1.66069, "median_ms": 1.65601,
                                 "p99_ms": 1.67065}
    assert report["gpu_compute"] == {"min_ms": 1.54541, "max_ms": 6.19434, "mean_ms": 1.56049, "median_ms": 1.55664,
                                     "p99_ms": 1.57495}
    assert report["enqueue"] == {"min_ms": 0.885742, "median_ms": 0.935547}
    assert report["throughput_qps"] is None, "TensorRT 7 prints 'throughput: 0 qps'; zero is not a throughput"
    assert report["total_host_walltime_s"] == 3.00461 and report["total_gpu_compute_s"] == 2.99582
    assert inferences(report) == 20, "the traced runs stand in for the missing throughput"
    assert latency_of(report)["median_ms"] == 1.65601 and latency_of(report)["statistic"].startswith("host latency")


@pytest.mark.parametrize(("text", "version"), [
    ("&&&& PASSED TensorRT.trtexec [TensorRT v8400] # trtexec", "8.4.0"),
    ("&&&& PASSED TensorRT.trtexec [TensorRT v8601] # trtexec", "8.6.1"),
    ("&&&& PASSED TensorRT.trtexec [TensorRT v100300] # trtexec", "10.3.0"),
    ("&&&& PASSED TensorRT.trtexec [TensorRT v101300] # trtexec", "10.13.0"),
    ("[I] TensorRT version: 8.6.3\n&&&& PASSED TensorRT.trtexec [TensorRT v8603]", "8.6.3"),
    ("&&&& PASSED TensorRT.trtexec # ./trtexec", None),
])
def test_one_tensorrt_version_format(text, version):
    assert tensorrt_version(text) == version


def test_a_report_without_figures_has_none():
    report = parse_trtexec("&&&& RUNNING TensorRT.trtexec [TensorRT v8502]\n&&&& PASSED TensorRT.trtexec\n")
    assert not has_figures(report) and report["latency"] is None and inferences(report) is None


def test_timing_command_loads_the_engine_at_the_built_shapes():
    build = ["/usr/bin/trtexec", "--onnx=m.onnx", "--saveEngine=m.engine", "--minShapes=x:1x8",
             "--optShapes=x:4x8", "--maxShapes=x:64x8", "--duration=3"]
    assert timing_command(build, "m.engine", 2.5) == ["/usr/bin/trtexec", "--loadEngine=m.engine",
                                                        "--shapes=x:4x8", "--warmUp=200", "--duration=2.5",
                                                        "--iterations=1"]
