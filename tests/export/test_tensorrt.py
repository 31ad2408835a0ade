import pytest

from edgewise import export
from edgewise.export.errors import ExportError


def test_command_has_profile_precision_and_timing():
    command = export.trtexec_command("m.onnx", "m.engine", "x", (1, 8, 8), "int4", max_batch=32, opt_batch=4)
    assert command[:3] == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine"]
    assert "--minShapes=x:1x1x8x8" in command and "--optShapes=x:4x1x8x8" in command
    assert "--maxShapes=x:32x1x8x8" in command and "--stronglyTyped" in command
    assert "--memPoolSize=workspace:1024M" in command and "--warmUp=200" in command
    assert "--fp16" in export.trtexec_command("m.onnx", "m.engine", "x", (3, 4, 4), "fp16")
    with pytest.raises(ExportError, match="precision"):
        export.trtexec_command("m.onnx", "m.engine", "x", (1,), "fp8")


def test_run_trtexec_builds_and_parses(fake_trtexec, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    command = export.trtexec_command("m.onnx", "m.engine", "x", (1, 8, 8), "fp16")
    report = export.run_trtexec(command, cwd=tmp_path)
    assert (tmp_path / "m.engine").stat().st_size == 1311744
    assert report["latency"]["median_ms"] == 0.338867 and report["command"] == command
    with pytest.raises(ExportError, match="trtexec failed"):
        export.run_trtexec(export.trtexec_command("missing.onnx", "m.engine", "x", (1,)), cwd=tmp_path)


def test_a_report_without_figures_is_an_error_not_a_measurement(fake_trtexec, tmp_path, monkeypatch):
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    monkeypatch.setenv("FAKE_TRTEXEC_FORMAT", "empty")
    with pytest.raises(ExportError, match="no throughput or latency figures"):
        export.run_trtexec(export.trtexec_command("m.onnx", "m.engine"), cwd=tmp_path)


def test_shapes_are_given_for_dynamic_inputs_only_or_as_a_batch_profile():
    static = export.trtexec_command("m.onnx", "m.engine")
    assert not any(a.startswith(("--shapes", "--minShapes")) for a in static)
    fixed = export.trtexec_command("m.onnx", "m.engine", shapes={"ids": (1, 128), "mask": (1, 128)})
    assert "--shapes=ids:1x128,mask:1x128" in fixed


def test_tensorrt_is_unavailable_here_with_a_reason():
    available, reason = export.tensorrt_status()
    assert not available and ("not installed" in reason or "no CUDA" in reason)
    with pytest.raises(ExportError, match="TensorRT is unavailable here"):
        export.to_tensorrt("m.onnx", "m.engine", (1, 8, 8))
