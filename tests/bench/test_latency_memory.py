import os

import numpy as np
import pytest
import torch

from edgewise.bench.latency import LatencyConfig, machine_settings, measure_latency
from edgewise.bench.memory import onnx_peak_memory, python_peak_rss


class FakeClock:
    """Each call advances time by the next step, so runs take known durations."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_latency_statistics_on_a_known_sequence():
    clock = FakeClock()
    durations = iter([0.5] + [0.001] * 5 + [0.001 * (i + 1) for i in range(10)])

    def make():
        clock.t += 2.0  # session creation

        def run():
            clock.t += next(durations)

        return run

    stats = measure_latency(make, LatencyConfig(warmup_s=0.0, warmup_iterations=5, iterations=10, duration_s=0.0),
                            clock)
    assert stats["session_create_s"] == 2.0 and stats["first_inference_s"] == 0.5
    assert stats["warmup_iterations"] == 5 and stats["iterations"] == 10
    assert stats["min_ms"] == pytest.approx(1.0) and stats["max_ms"] == pytest.approx(10.0)
    assert stats["mean_ms"] == pytest.approx(5.5) and stats["median_ms"] == pytest.approx(5.5)
    assert stats["p90_ms"] == pytest.approx(9.1) and stats["p99_ms"] == pytest.approx(9.91)
    assert stats["throughput_per_s"] == pytest.approx(10 / 0.055)
    assert stats["cv"] == pytest.approx(np.std(np.arange(1, 11)) / 5.5)
    assert stats["p10_ms"] == pytest.approx(1.9) and stats["spread"] == pytest.approx((9.1 - 1.9) / 5.5)
    assert stats["drift"] == pytest.approx((8.0 - 3.0) / 5.5)  # runs 1-5 ms, then 6-10 ms: a machine slowing down


def test_duration_keeps_timing_after_the_iteration_count():
    clock = FakeClock()

    def make():
        def run():
            clock.t += 0.01
        return run

    stats = measure_latency(make, LatencyConfig(warmup_s=0.05, warmup_iterations=1, iterations=3, duration_s=1.0),
                            clock)
    assert stats["warmup_iterations"] >= 5 and stats["iterations"] >= 100


def test_settings_are_recorded():
    settings = machine_settings(2)
    assert settings["threads"] == 2 and "cpu_affinity" in settings


def test_peak_memory_of_a_child_that_allocates_a_known_amount():
    small_code, small = python_peak_rss("import numpy")
    code, big = python_peak_rss("import numpy as np; a = np.ones(200 * 2**20 // 8); a[::512] += 1")
    assert small_code == code == 0
    assert 190 * 2**20 <= big - small <= 230 * 2**20


def test_onnx_model_peak_memory(tmp_path):
    from edgewise import export
    from edgewise.zoo.models import build_model

    model = build_model("mlp", (1, 32, 32), 10, hidden=[1024, 1024]).eval()
    f = export.to_onnx(model, torch.rand(2, 1, 32, 32), tmp_path / "m.onnx")
    np.savez(tmp_path / "x.npz", x=np.random.rand(1, 1, 32, 32).astype(np.float32))
    result = onnx_peak_memory(f.path, tmp_path / "x.npz", runs=3)
    assert result["kind"] == "measured" and result["model_rss_bytes"] > f.bytes * 0.5
    assert result["peak_rss_bytes"] > result["baseline_rss_bytes"]


def test_a_load_window_reads_the_other_processes_share_from_procfs(tmp_path, monkeypatch):
    """/proc/stat's busy jiffies less this process's own CPU time, over the wall time and the CPUs."""
    from edgewise.bench.latency import LoadWindow, cpu_busy_seconds

    tick = os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "stat"
    monkeypatch.setenv("EDGEWISE_PROCFS", str(tmp_path))
    stat.write_text(f"cpu  {10 * tick} 0 {5 * tick} 999 3 0 0 0 0 0\ncpu0 1 2 3\n")
    assert cpu_busy_seconds() == pytest.approx(15.0)
    own, wall = iter([1.0, 1.5]), iter([100.0, 102.0])
    window = LoadWindow(own=lambda: next(own), clock=lambda: next(wall), cpus=2)
    window.begin()
    stat.write_text(f"cpu  {11 * tick} 0 {6 * tick} 1000 3 0 0 0 0 0\n")  # 2 s busy, 0.5 s of them ours
    assert window.end() == pytest.approx(1.5 / (2.0 * 2))
    stat.unlink()
    assert cpu_busy_seconds() is None


def test_a_drifting_timing_or_a_busy_machine_makes_it_unstable():
    from edgewise.bench.latency import stability

    assert stability({"spread": 1.2, "drift": 0.02}, 0.05) == []  # a wide but steady distribution is stable
    assert stability({"drift": 0.02}, None) == []
    reasons = stability({"drift": 0.3}, 0.4)
    assert reasons == ["the medians of its first and second half differ by 30% (more than 10%)",
                       "other processes kept 40% of the CPUs busy (more than 25%)"]


def test_a_module_is_timed_as_shipped_and_a_file_as_it_is(tmp_path):
    from edgewise.bench.latency import file_latency, module_latency
    from edgewise.export import to_onnx

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()
    x = torch.rand(2, 3, 16, 16)
    config = LatencyConfig(warmup_s=0.0, warmup_iterations=1, iterations=5, duration_s=0.0)
    timed = module_latency(model, x, config)
    assert timed["kind"] == "measured" and timed["batch"] == 2 and timed["iterations"] == 5
    assert timed["backend"] == "onnxruntime (CPUExecutionProvider)" and "median_ms" in timed
    path = to_onnx(model, x, tmp_path / "m.onnx").path
    assert file_latency(path, x.numpy(), config)["iterations"] == 5


def test_a_module_timed_several_times_keeps_the_lowest_median(monkeypatch):
    from edgewise.bench import latency

    timings = iter([{"median_ms": 2.0, "unstable": []}, {"median_ms": 1.5, "unstable": ["busy"]},
                    {"median_ms": 1.8, "unstable": []}, {"median_ms": 9.0, "unstable": []}])
    monkeypatch.setattr(latency, "file_latency", lambda *args: next(timings))
    model, x = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)).eval(), torch.rand(1, 3, 16, 16)
    assert latency.module_latency(model, x, timings=3) == {"median_ms": 1.5, "unstable": ["busy"], "timings": 3}
    assert latency.module_latency(model, x) == {"median_ms": 9.0, "unstable": [], "timings": 1}
