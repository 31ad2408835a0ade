import subprocess

import pytest

from edgewise import export
from edgewise.export.errors import ExportError
from edgewise.export.runner import parse_trtexec


def test_command_has_profile_precision_and_timing():
    command = export.trtexec_command("m.onnx", "m.engine", "x", (1, 8, 8), "int4", max_batch=32, opt_batch=4)
    assert command[:3] == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine"]
    assert "--minShapes=x:1x1x8x8" in command and "--optShapes=x:4x1x8x8" in command
    assert "--maxShapes=x:32x1x8x8" in command and "--stronglyTyped" in command
    assert "--memPoolSize=workspace:1024M" in command and "--warmUp=200" in command
    assert "--fp16" in export.trtexec_command("m.onnx", "m.engine", "x", (3, 4, 4), "fp16")
    with pytest.raises(ExportError, match="precision"):
        export.trtexec_command("m.onnx", "m.engine", "x", (1,), "fp8")


def test_parser_reads_the_fake_report_exactly(fake_trtexec, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    text = subprocess.run([str(fake_trtexec), f"--onnx={tmp_path / 'm.onnx'}", "--fp16"], capture_output=True,
                          text=True, check=True).stdout
    report = parse_trtexec(text)
    assert report["passed"] and not report["failed"] and report["tensorrt_version"] == "100300"
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


def test_run_trtexec_builds_and_parses(fake_trtexec, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    command = export.trtexec_command("m.onnx", "m.engine", "x", (1, 8, 8), "fp16")
    report = export.run_trtexec(command, cwd=tmp_path)
    assert (tmp_path / "m.engine").stat().st_size == 1311744
    assert report["latency"]["median_ms"] == 0.338867 and report["command"] == command
    with pytest.raises(ExportError, match="trtexec failed"):
        export.run_trtexec(export.trtexec_command("missing.onnx", "m.engine", "x", (1,)), cwd=tmp_path)


def test_tensorrt_is_unavailable_here_with_a_reason():
    available, reason = export.tensorrt_status()
    assert not available and ("not installed" in reason or "no CUDA" in reason)
    with pytest.raises(ExportError, match="TensorRT is unavailable here"):
        export.to_tensorrt("m.onnx", "m.engine", (1, 8, 8))
