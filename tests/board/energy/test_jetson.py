import stat
import sys

import pytest

from edgewise.board.energy import InaMeter, TegrastatsMeter, parse_tegrastats
from edgewise.board.energy.rails import board_total

LINES = {
    "nano": "RAM 2020/3956MB (lfb 1x2MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) CPU [9%@1479,4%@1479] "
            "EMC_FREQ 0% GR3D_FREQ 0% PLL@32C CPU@35C PMIC@100C GPU@36C AO@39.5C thermal@36.25C "
            "POM_5V_IN 1022/1022 POM_5V_GPU 0/0 POM_5V_CPU 204/204",
    "xavier-nx": "RAM 1789/7765MB (lfb 1274x4MB) SWAP 0/3882MB (cached 0MB) CPU [1%@1190,off,off] EMC_FREQ 0% "
                 "GR3D_FREQ 0% AO@40C GPU@40.5C thermal@42.55C VDD_IN 4067/4067 VDD_CPU_GPU_CV 738/738 "
                 "VDD_SOC 1353/1353",
    "orin-nx": "11-21-2026 10:00:00 RAM 4412/7772MB (lfb 2x4MB) SWAP 0/3886MB (cached 0MB) CPU [2%@729] "
               "tj@48.875C SOC1@48.875C CV2@45.75C VDD_IN 5299mW/5299mW VDD_CPU_GPU_CV 773mW/773mW "
               "VDD_SOC 1424mW/1424mW",
    "agx-orin": "11-21-2026 10:00:00 RAM 9000/62800MB CPU [1%@729] VDD_GPU_SOC 3205mW/3205mW "
                "VDD_CPU_CV 4405mW/4405mW VIN_SYS_5V0 4767mW/4767mW",
    "agx-xavier": "RAM 3000/31920MB CPU [2%@1190] EMC_FREQ 0% GR3D_FREQ 0% GPU 0/0 CPU 311/311 SOC 932/932 CV 0/0 "
                  "VDDRQ 621/621 SYS5V 1482/1482",
    "newest": "11-21-2026 10:00:00 RAM 4412/7772MB VDD_IN 5299mW/5250mW/5400mW VDD_SOC 1424mW/1400mW/1500mW",
}


@pytest.mark.parametrize(("board", "total", "rail"), [
    ("nano", 1022, "POM_5V_IN"), ("xavier-nx", 4067, "VDD_IN"), ("orin-nx", 5299, "VDD_IN"),
    ("agx-orin", 3205 + 4405 + 4767, "sum of module rails"), ("agx-xavier", 0 + 311 + 932 + 0 + 621 + 1482,
                                                               "sum of module rails"),
    ("newest", 5299, "VDD_IN"),
])
def test_tegrastats_lines_of_every_format(board, total, rail):
    rails = parse_tegrastats(LINES[board])
    assert "RAM" not in rails and "SWAP" not in rails and "IRAM" not in rails
    value, source, _ = board_total(rails)
    assert value == total and source.startswith(rail)


def test_fake_tegrastats_is_integrated_with_an_injected_clock(tmp_path):
    script = tmp_path / "tegrastats"
    lines = [LINES["orin-nx"].replace("VDD_IN 5299mW/5299mW", f"VDD_IN {mw}mW/{mw}mW") for mw in (4000, 6000, 6000)]
    script.write_text(f"#!{sys.executable}\nimport sys\nfor line in {lines!r}:\n    print(line, flush=True)\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    ticks = iter(range(100))
    meter = TegrastatsMeter(str(script), clock=lambda: float(next(ticks)))
    meter.begin()
    meter._reader.join(timeout=10)
    result = meter.end()
    # readings 4, 6, 6 W one second apart: (4+6)/2 + (6+6)/2 = 11 J
    assert result.joules == pytest.approx(11.0) and result.duration_s == 2.0
    assert result.details["rail"] == "VDD_IN" and result.details["samples"] == 3


def _hwmon(root, labels):
    hwmon = root / "bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    hwmon.mkdir(parents=True)
    for n, (label, mv, ma) in labels.items():
        (hwmon / f"in{n}_label").write_text(label + "\n")
        (hwmon / f"in{n}_input").write_text(f"{mv}\n")
        (hwmon / f"curr{n}_input").write_text(f"{ma}\n")
    return hwmon


def test_jetpack5_hwmon_total_rail_skips_nc_and_channel_7(tmp_path):
    hwmon = _hwmon(tmp_path, {1: ("VDD_IN", 5000, 1000), 2: ("VDD_CPU_GPU_CV", 5000, 200), 3: ("NC", 0, 0),
                              7: ("sum of shunt voltages", 99999, 99999)})
    ticks = iter([0.0, 1.0, 2.0])
    meter = InaMeter(tmp_path, clock=lambda: next(ticks))
    total, rail, rails = meter.read_mw()
    assert (total, rail) == (5000.0, "VDD_IN") and set(rails) == {"VDD_IN", "VDD_CPU_GPU_CV"}
    meter.begin()
    (hwmon / "curr1_input").write_text("2000\n")  # 10 W now
    meter.sample()
    result = meter.end()
    assert result.joules == pytest.approx((5 + 10) / 2 + (10 + 10) / 2)


def _iio_rails(device, rails):
    """An INA3221 iio device as L4T exposes it: rail_name_N and in_powerN_input (mW) per channel."""
    device.mkdir(parents=True)
    for n, (name, mw) in enumerate(rails):
        (device / f"rail_name_{n}").write_text(name)
        (device / f"in_power{n}_input").write_text(str(mw))


def test_jetpack4_iio_rails(tmp_path):
    _iio_rails(tmp_path / "bus/i2c/drivers/ina3221x/6-0040/iio:device0",
               [("POM_5V_IN", 2100), ("POM_5V_GPU", 300), ("POM_5V_CPU", 700)])
    total, rail, _ = InaMeter(tmp_path).read_mw()
    assert (total, rail) == (2100.0, "POM_5V_IN")


def test_not_a_jetson(tmp_path):
    ok, reason = InaMeter(tmp_path).available()
    assert not ok and "not a Jetson" in reason


def test_thor_tegrastats_total_is_its_input_rail_vin():
    # JetPack 7 on AGX Thor: VIN is the input; adding its sub-rails would count the board twice (162 W, not 87 W)
    line = ("11-21-2026 10:00:00 RAM 23412/125772MB CPU [3%@972,2%@972] GPU 0%@[1575] tj@52C VDD_GPU 31000mW/31000mW "
            "VDD_CPU_SOC_MSS 29000mW/29000mW VIN_SYS_5V0 15000mW/15000mW VIN 87000mW/87000mW")
    total, rail, warnings = board_total(parse_tegrastats(line))
    assert (total, rail, warnings) == (87000.0, "VIN", [])


def test_thor_ina238_input_rail_in_sysfs(tmp_path):
    ina238 = tmp_path / "bus/i2c/drivers/ina238/2-0044/hwmon/hwmon5"
    ina238.mkdir(parents=True)
    (ina238 / "power1_input").write_text("87250000\n")  # uW
    _hwmon(tmp_path, {1: ("VDD_GPU", 5000, 6200), 2: ("VDD_CPU_SOC_MSS", 5000, 5800)})
    total, rail, rails = InaMeter(tmp_path).read_mw()
    assert (total, rail) == (87250.0, "VIN") and set(rails) == {"VIN", "VDD_GPU", "VDD_CPU_SOC_MSS"}
    (ina238 / "power1_label").write_text("VIN_MAIN\n")  # a carrier board's own name is kept
    assert "VIN_MAIN" in InaMeter(tmp_path).read_mw()[2]


def test_l4t28_iio_device_directory(tmp_path):
    # TX1/TX2 on L4T 28 keep the rails under iio_device, not iio:device0
    _iio_rails(tmp_path / "bus/i2c/drivers/ina3221x/0-0040/iio_device",
               [("VDD_IN", 3500), ("VDD_SYS_GPU", 400), ("VDD_SYS_SOC", 900)])
    assert InaMeter(tmp_path).read_mw()[:2] == (3500.0, "VDD_IN")


def test_a_sub_rail_above_the_input_rail_is_a_warning(tmp_path):
    _hwmon(tmp_path, {1: ("VDD_IN", 5000, 1000), 2: ("VDD_CPU_GPU_CV", 5000, 1400)})
    meter = InaMeter(tmp_path, clock=iter([0.0, 1.0]).__next__)
    meter.begin()
    result = meter.end()
    assert result.details["rail"] == "VDD_IN" and "VDD_CPU_GPU_CV reads 7000 mW, above" in result.details["warnings"][0]


def test_unreadable_rails_say_so_with_the_fix(tmp_path, monkeypatch):
    _hwmon(tmp_path, {1: ("VDD_IN", 5000, 1000)})
    real = type(tmp_path).read_text

    def refuse(path, *args, **kwargs):
        if path.name.endswith("_input"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "read_text", refuse)
    ok, reason = InaMeter(tmp_path).available()
    assert not ok and "permission denied" in reason and "run as root" in reason
