import pytest

from edgewise.base.errors import UserError
from edgewise.bench.availability import all_targets, availability
from edgewise.bench.estimate import roofline
from edgewise.targets import load_target


def test_roofline_is_labelled_and_picks_the_binding_limit():
    orin = load_target("jetson-orin-nx")
    compute_bound = roofline(orin, macs=10**9, weight_bytes=1000)
    assert compute_bound["kind"] == "estimated" and compute_bound["bound"] == "compute"
    assert compute_bound["latency_s"] == pytest.approx(2e9 / 50e12)  # dense INT8 = half the sparse 100 TOPS
    memory_bound = roofline(orin, macs=1000, weight_bytes=10**8)
    assert memory_bound["bound"] == "memory" and memory_bound["latency_s"] == pytest.approx(1e8 / 102.4e9)
    assert memory_bound["power_mode"] == "25W" and memory_bound["energy_j"] == pytest.approx(25 * 1e8 / 102.4e9)
    nano = roofline(load_target("jetson-nano"), macs=10**6, weight_bytes=10, power_mode="5W")
    assert nano["precision"] == "fp16" and nano["power_w"] == 5
    with pytest.raises(UserError, match="no power mode"):
        roofline(orin, 1, 1, power_mode="90W")


def test_availability_here(tmp_path):
    rows = {r["target"]: r for r in all_targets(tmp_path)}
    assert rows["fantastic4-asic"]["figures"] == "emulated"
    assert rows["jetson-orin-nx"]["figures"] == "estimated" and "not this machine" in rows["jetson-orin-nx"]["why"]
    assert rows["x86-host"]["energy"].startswith("unavailable: no powercap")
    assert rows["nvidia-gpu"]["runs_here"] is False


def test_a_jetson_board_is_recognised(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_text("NVIDIA Jetson Orin NX Engineering Reference Developer Kit\x00")
    row = availability("jetson-orin-nx", tmp_path)
    assert row["runs_here"] and row["figures"] == "measured"
    assert availability("jetson-nano", tmp_path)["runs_here"] is False


def test_the_machine_is_read_under_the_kit_sysfs_and_procfs_roots(tmp_path, monkeypatch):
    zone = tmp_path / "host-sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    for name, value in (("name", "package-0"), ("energy_uj", "1000"), ("max_energy_range_uj", "262143328850")):
        (zone / name).write_text(value + "\n")
    (tmp_path / "host-proc/device-tree").mkdir(parents=True)
    (tmp_path / "host-proc/device-tree/model").write_text("NVIDIA Jetson Orin NX Developer Kit\x00")
    monkeypatch.setenv("EDGEWISE_SYSFS", str(tmp_path / "host-sys"))
    monkeypatch.setenv("EDGEWISE_PROCFS", str(tmp_path / "host-proc"))
    assert availability("x86-host")["energy"] == "measured (RAPL)"
    assert availability("jetson-orin-nx")["runs_here"]
