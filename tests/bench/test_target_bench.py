import json

import numpy as np
import pytest
import torch

from edgewise import export
from edgewise.bench.counts import count_onnx
from edgewise.bench.inputs import Inputs
from edgewise.bench.target_bench import BenchConfig, bench_model
from edgewise.board.errors import UserError
from edgewise.zoo.models import build_model

QUICK = BenchConfig(iterations=20, duration_s=0.1, memory_runs=2)


@pytest.fixture(scope="module")
def onnx_mlp(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "m.onnx"
    model = build_model("mlp", (1, 8, 8), 10, hidden=[32]).eval()
    export.to_onnx(model, torch.rand(2, 1, 8, 8), path)
    return path, Inputs({"x": np.random.rand(1, 1, 8, 8).astype(np.float32)}, [{"name": "x", "shape": [1, 1, 8, 8]}])


def test_host_is_measured_and_energy_unavailable_here(onnx_mlp):
    path, probe = onnx_mlp
    record = bench_model(path, probe, "x86-host", QUICK)
    timed = record["latency"]
    assert timed["kind"] == "measured" and timed["iterations"] >= 20  # a count of runs, not a speed
    assert record["memory"]["kind"] == "measured" and record["memory"]["peak_rss_bytes"] > 0
    assert record["energy"]["kind"] == "unavailable" and "no powercap" in record["energy"]["reason"]
    assert "joules" not in record["energy"] and "gross_j_per_inference" not in record["energy"]


def test_host_energy_from_a_fake_rapl_tree(onnx_mlp, tmp_path, monkeypatch):
    zone = tmp_path / "sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    monkeypatch.setenv("EDGEWISE_SYSFS", str(tmp_path / "sys"))
    (zone / "name").write_text("package-0")
    (zone / "energy_uj").write_text("0")
    (zone / "max_energy_range_uj").write_text("262143328850")
    path, probe = onnx_mlp
    record = bench_model(path, probe, "x86-host", BenchConfig(iterations=5, duration_s=0.05, energy_window_s=0.05,
                                                              energy_repeats=1, memory_runs=1))
    assert record["energy"]["kind"] == "measured" and record["energy"]["source"] == "rapl"
    assert record["energy"]["gross_j_per_inference"] == 0.0  # the fake counter never moves


def test_boards_are_estimated_or_read_from_the_runner(onnx_mlp, tmp_path):
    path, probe = onnx_mlp
    estimated = bench_model(path, probe, "jetson-orin-nx", counts=count_onnx(path, probe))
    assert estimated["latency"]["kind"] == "estimated" and estimated["energy"]["kind"] == "estimated"
    # an estimate is a band around its central value (the calibration's spread), not a single made-up figure
    assert estimated["latency"]["low_ms"] < estimated["latency"]["median_ms"] < estimated["latency"]["high_ms"]
    assert estimated["inputs"] == [{"name": "x", "shape": [1, 1, 8, 8]}]
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"format": "edgewise-bundle-result/1", "backend": "onnxruntime",
                                  "latency": {"median_ms": 0.8, "p90_ms": 0.9}}))
    measured = bench_model(path, probe, "jetson-orin-nx", board_result=result)
    assert measured["latency"] == {"kind": "measured", "median_ms": 0.8, "p90_ms": 0.9, "backend": "onnxruntime"}
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="not a result JSON"):
        bench_model(path, probe, "jetson-orin-nx", board_result=tmp_path / "bad.json")


def test_emulated_needs_4_bit_weights_and_gpu_is_unavailable(onnx_mlp):
    path, probe = onnx_mlp
    record = bench_model(path, probe, "fantastic4-fpga")
    assert record["latency"]["kind"] == "unavailable" and "float weights" in record["latency"]["reason"]
    assert bench_model(path, probe, "jetson-nano")["latency"]["kind"] == "unavailable", "no counts, no estimate"
    gpu = bench_model(path, probe, "nvidia-gpu")
    assert gpu["energy"]["kind"] == "unavailable" and gpu["energy"]["reason"]


@pytest.mark.parametrize(("settings", "message"), [
    ({"iterations": 0}, "iterations 0 is outside"), ({"iterations": 10**12}, "iterations"),
    ({"duration_s": -1.0}, "duration -1.0"), ({"duration_s": float("nan")}, "duration nan"),
    ({"duration_s": float("inf")}, "duration inf"), ({"threads": 0}, "threads 0"), ({"threads": -1}, "threads -1")])
def test_settings_that_time_nothing_or_forever_are_refused(settings, message):
    with pytest.raises(UserError, match=message):
        BenchConfig(**settings)


def test_unreadable_rapl_leaves_energy_unavailable_and_the_bench_goes_on(onnx_mlp, tmp_path, monkeypatch):
    import builtins

    zone = tmp_path / "sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    for name, value in (("name", "package-0"), ("energy_uj", "0"), ("max_energy_range_uj", "262143328850")):
        (zone / name).write_text(value)
    monkeypatch.setenv("EDGEWISE_SYSFS", str(tmp_path / "sys"))
    real_open = builtins.open

    def root_only(path, *args, **kwargs):  # as Linux >= 5.10 serves energy_uj to a user
        if str(path).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", root_only)
    path, probe = onnx_mlp
    record = bench_model(path, probe, "x86-host", QUICK)
    assert record["latency"]["kind"] == "measured" and record["memory"]["kind"] == "measured"
    assert record["energy"]["kind"] == "unavailable" and "chmod a+r" in record["energy"]["reason"]
