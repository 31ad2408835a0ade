import builtins
from pathlib import Path

import pytest

from edgewise.board.energy import RaplMeter
from edgewise.board.errors import UserError


def _zone(root: Path, name: str, label: str, energy: int, span: int = 262143328850) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text(f"{energy}\n")
    (zone / "max_energy_range_uj").write_text(f"{span}\n")
    return zone


@pytest.fixture
def powercap(tmp_path):
    root = tmp_path / "powercap"
    zones = {
        "pkg": _zone(root, "intel-rapl:0", "package-0", 1_000_000),
        "core": _zone(root, "intel-rapl:0:0", "core", 500_000),
        "uncore": _zone(root, "intel-rapl:0:1", "uncore", 100_000),
        "dram": _zone(root, "intel-rapl:0:2", "dram", 2_000_000),
        "psys": _zone(root, "intel-rapl:1", "psys", 9_000_000),
        "mmio": _zone(root, "intel-rapl-mmio:0", "package-0", 1_000_000),
    }
    return root, zones


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_package_plus_dram_never_core_or_psys(powercap):
    root, zones = powercap
    clock = Clock()
    meter = RaplMeter(root, clock)
    meter.begin()
    for key, value in (("pkg", 4_000_000), ("core", 9_500_000), ("uncore", 900_000), ("dram", 2_500_000),
                       ("psys", 99_000_000), ("mmio", 50_000_000)):
        (zones[key] / "energy_uj").write_text(str(value))
    clock.t = 102.0
    result = meter.end()
    assert result.joules == pytest.approx(3.0 + 0.5)
    assert result.kind == "measured" and result.mean_w == pytest.approx(1.75)
    assert result.details["summed"] == ["dram@intel-rapl:0:2", "package-0"]


def test_one_wraparound_is_corrected(powercap):
    root, zones = powercap
    (zones["pkg"] / "max_energy_range_uj").write_text("2000000")
    meter = RaplMeter(root, Clock())
    meter.begin()
    (zones["pkg"] / "energy_uj").write_text("1800000")
    meter.sample()
    (zones["pkg"] / "energy_uj").write_text("300000")  # wrapped: +200000 to the top, +300000 after
    result = meter.end()
    assert result.details["zones_j"]["package-0"] == pytest.approx(0.8 + 0.5)


def test_permission_error_names_the_fix(powercap, monkeypatch):
    root, _ = powercap
    real_open = builtins.open

    def guarded(path, *args, **kwargs):
        if str(path).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    ok, reason = RaplMeter(root).available()  # says no, with the fix, before any window opens
    assert not ok and "root-only since Linux 5.10" in reason and "chmod a+r" in reason
    with pytest.raises(UserError, match=r"root-only since Linux 5\.10") as info:
        RaplMeter(root).begin()
    assert "chmod a+r" in info.value.fix


def test_unavailable_without_powercap(tmp_path):
    ok, reason = RaplMeter(tmp_path / "none").available()
    assert not ok and "no powercap" in reason
    with pytest.raises(UserError, match="RAPL is unavailable"):
        RaplMeter(tmp_path / "none").begin()


def test_energy_per_inference_gross_and_net(powercap):
    from edgewise.board.energy.measure import energy_per_inference

    root, zones = powercap
    clock = Clock()
    counter = {"uj": 1_000_000}

    def tick(seconds, joules):
        clock.t += seconds
        counter["uj"] += int(joules * 1e6)
        (zones["pkg"] / "energy_uj").write_text(str(counter["uj"]))

    # idle draws 1 W; each inference takes 10 ms and 0.05 J on top of idle
    result = energy_per_inference(RaplMeter(root, clock), lambda: tick(0.01, 0.01 + 0.05), window_s=0.5,
                                  repeats=3, idle_s=0.5, clock=clock, sleep=lambda s: tick(s, 1.0 * s))
    assert result["idle_w"] == pytest.approx(1.0)
    assert result["gross_j_per_inference"] == pytest.approx(0.06)
    assert result["net_j_per_inference"] == pytest.approx(0.05)
    assert result["spread"] == pytest.approx(0.0) and result["kind"] == "measured"
