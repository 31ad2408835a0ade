import stat
import sys

from edgewise.board.energy.tegra import RamPeak, board_state, gpu_clocks, power_mode, ram_in_use


def test_power_mode_from_nvpmodel(tmp_path, monkeypatch):
    tool = tmp_path / "nvpmodel"
    tool.write_text(f"#!{sys.executable}\nprint('NVPM WARN: fan mode is not set!')\nprint('NV Power Mode: 15W')\n"
                    "print(2)\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert power_mode() == {"name": "15W", "id": 2}
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert power_mode()["name"] is None and "ships with JetPack" in power_mode()["reason"]


def test_jetson_clocks_is_min_equal_max_of_the_gpu_devfreq(tmp_path, monkeypatch):
    gpu = tmp_path / "class/devfreq/17000000.ga10b"
    gpu.mkdir(parents=True)
    for name, hz in (("min_freq", 306000000), ("max_freq", 918000000), ("cur_freq", 306000000)):
        (gpu / name).write_text(f"{hz}\n")
    (tmp_path / "class/devfreq/15380000.nvdec").mkdir()  # not the GPU
    assert gpu_clocks(tmp_path)["jetson_clocks"] is False
    (gpu / "min_freq").write_text("918000000\n")
    monkeypatch.setenv("EDGEWISE_SYSFS", str(tmp_path))
    assert board_state()["gpu_clocks"] == {"device": "17000000.ga10b", "min_hz": 918000000, "max_hz": 918000000,
                                           "cur_hz": 306000000, "jetson_clocks": True}


def test_system_ram_above_idle_or_why_not(tmp_path, monkeypatch):
    (tmp_path / "meminfo").write_text("MemTotal:  1000 kB\nMemFree:  100 kB\nMemAvailable:  600 kB\n")
    monkeypatch.setenv("EDGEWISE_PROCFS", str(tmp_path))
    assert ram_in_use() == 400 * 1024
    with RamPeak() as peak:
        (tmp_path / "meminfo").write_text("MemTotal:  1000 kB\nMemFree:  100 kB\nMemAvailable:  350 kB\n")
    assert peak.record() == {"system_ram_idle_bytes": 400 * 1024, "system_ram_peak_bytes": 650 * 1024,
                             "system_ram_above_idle_bytes": 250 * 1024}
    monkeypatch.setenv("EDGEWISE_PROCFS", str(tmp_path / "none"))
    with RamPeak() as missing:
        pass
    assert missing.record()["system_ram"] == "unavailable" and "meminfo" in missing.record()["system_ram_reason"]
