
from edgewise.bench.availability import all_targets, availability


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
