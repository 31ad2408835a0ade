"""A Jetson measured end to end on a simulated board (tests/fakes/board.py): `edgewise bench` there, and a bundle's
run.py there; energy is checked against the exact integral of the board's power trace."""

import json
import os
import subprocess
import sys

import pytest
import torch

from edgewise import export
from edgewise.zoo.models import build_model

TARGETS = {"orin-nx": ("jetson-orin-nx", "VDD_IN"), "thor": ("jetson-agx-thor", "VIN")}
QUICK = ("--batch", "1", "--duration", "0.2", "--iterations", "20", "--energy-window", "0.6", "--energy-repeats", "2")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small CNN as ONNX, with its probe and the torch model's output on it."""
    torch.manual_seed(0)
    net = build_model("lenet", (1, 8, 8), 10).eval()
    probe = torch.rand(4, 1, 8, 8)
    path = export.to_onnx(net, probe[:1], tmp_path_factory.mktemp("m") / "m.onnx").path
    with torch.no_grad():
        return path, probe.numpy(), net(probe).numpy()


def _windows_follow_the_trace(energy, board):
    """Every energy window's joules equal the trace's integral over the window, within 2%: the meter integrates
    polled samples, and a window's edges fall between polls (two clean runs of the trtexec window came out 1.1% off)."""
    assert energy["kind"] == "measured" and energy["windows"]
    for window in energy["windows"]:
        truth = board.energy_j(window["start"], window["end"])
        assert window["joules"] == pytest.approx(truth, rel=0.02), window


@pytest.mark.slow
@pytest.mark.parametrize("name", ["orin-nx", "thor"])
def test_bench_on_the_board_measures_latency_memory_and_energy(model, simulated_jetson, edgewise, tmp_path, name):
    target, rail = TARGETS[name]
    board = simulated_jetson(name)
    with board:
        result = edgewise("bench", str(model[0]), "--target", target, *QUICK, "--out", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "r.json").read_text())
    latency, memory, energy = record["latency"], record["memory"], record["energy"]
    # the loop's contract: at least the --iterations asked for (and the duration), never fewer
    assert latency["kind"] == "measured" and latency["iterations"] >= int(QUICK[QUICK.index("--iterations") + 1])
    assert latency["providers"] == ["CPUExecutionProvider"]  # what this onnxruntime has; a board's has CUDA too
    assert memory["kind"] == "measured" and memory["peak_rss_bytes"] > 0
    assert memory["system_ram_above_idle_bytes"] == 0  # the simulated meminfo stays at its idle level
    assert energy["source"] == "ina" and energy["rail"] == rail and not energy["warnings"]
    _windows_follow_the_trace(energy, board)
    assert energy["gross_j_per_inference"] > 0 and energy["idle_w"] == pytest.approx(6.0, abs=1.6)
    assert record["board"]["power_mode"] == {"name": "MAXN", "id": 0}
    assert record["board"]["gpu_clocks"]["jetson_clocks"] is True
    assert "energy (measured, ina): " in result.stderr and f"from {rail}" in result.stderr
    assert "board: power mode MAXN, jetson_clocks on" in result.stderr


@pytest.mark.slow
def test_trtexec_backend_on_the_board(model, simulated_jetson, edgewise, tmp_path, monkeypatch):
    board = simulated_jetson("orin-nx", trtexec=True)
    monkeypatch.setenv("FAKE_TRTEXEC_REALTIME", "1")
    with board:
        result = edgewise("bench", str(model[0]), "--target", "jetson-orin-nx", "--backend", "trtexec", *QUICK,
                          "--out", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["latency"]["median_ms"] == 0.338867 and record["latency"]["trtexec"]["tensorrt_version"] == "10.3.0"
    assert record["memory"]["kind"] == "measured" and "system_ram_above_idle_bytes" in record["memory"]
    assert record["energy"]["method"].startswith("difference of runs")
    _windows_follow_the_trace(record["energy"], board)


def test_another_boards_name_on_a_board_exits_2_with_the_fix(model, simulated_jetson, edgewise):
    simulated_jetson("orin-nx")
    result = edgewise("bench", str(model[0]), "--batch", "1", "--target", "jetson-nano")
    assert result.returncode == 2
    assert "not jetson-nano" in result.stderr and "--target jetson-orin-nx" in result.stderr


@pytest.mark.slow
def test_tegrastats_when_the_rails_are_not_in_sysfs(model, simulated_jetson, edgewise, tmp_path):
    board = simulated_jetson("thor", rails_in_sysfs=False)
    with board:
        result = edgewise("bench", str(model[0]), "--target", "jetson-agx-thor", *QUICK,
                          "--out", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    energy = json.loads((tmp_path / "r.json").read_text())["energy"]
    assert energy["source"] == "tegrastats" and energy["rail"] == "VIN"  # not VIN + its sub-rails
    # tegrastats prints every 100 ms, each line the power at its time: the integral holds to 3%
    for window in energy["windows"]:
        assert window["joules"] == pytest.approx(board.energy_j(window["start"], window["end"]), rel=0.03)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "backend"), [("orin-nx", "auto"), ("thor", "onnxruntime")])
def test_a_bundles_runner_measures_on_the_board(model, simulated_jetson, edgewise, tmp_path, monkeypatch, name,
                                                backend):
    target, rail = TARGETS[name]
    path, probe, expected = model
    command = export.trtexec_command("model.onnx", "model.engine", "x", (1, 8, 8), "fp16")
    bundle = export.bundle(path, tmp_path / "bundle", name="m", probe_input=probe, probe_output=expected,
                           trtexec=command)
    board = simulated_jetson(name, trtexec=True)
    monkeypatch.setenv("FAKE_TRTEXEC_REALTIME", "1")
    with board:
        ran = subprocess.run([sys.executable, "run.py", "--backend", backend, "--duration", "0.3", "--iterations",
                              "20", "--energy-window", "0.6", "--energy-repeats", "2"], cwd=bundle,
                             capture_output=True, text=True, check=False, env=os.environ.copy())
    assert ran.returncode == 0, ran.stderr
    result = json.loads((bundle / "result.json").read_text())
    assert result["backend"] == ("tensorrt" if backend == "auto" else "onnxruntime")  # auto: trtexec where it is
    assert result["latency"]["kind"] == "measured" and result["memory"]["kind"] == "measured"
    assert result["energy"]["rail"] == rail
    _windows_follow_the_trace(result["energy"], board)
    assert result["board"]["power_mode"]["name"] == "MAXN"
    # back on the host: all three measured, each beside the estimate it replaces
    shown = edgewise("bench", str(bundle), "--target", target, "--result", str(bundle / "result.json"),
                     "--out", str(tmp_path / "host.json"))
    assert shown.returncode == 0, shown.stderr
    record = json.loads((tmp_path / "host.json").read_text())
    for part in ("latency", "memory", "energy"):
        assert record[part]["kind"] == "measured" and record[part]["replaces"]["kind"] == "estimated"
    assert "; estimated" in shown.stderr
