import types

import pytest

from edgewise.board.energy import NvmlMeter


class NVMLError(Exception):
    pass


def fake_pynvml(energy_mj=None, power_mw=None):
    state = {"energy": list(energy_mj or []), "power": list(power_mw or [])}

    def total_energy(handle):
        if not state["energy"]:
            raise NVMLError("Not Supported")
        return state["energy"].pop(0)

    return types.SimpleNamespace(
        NVMLError=NVMLError, nvmlInit=lambda: None, nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}", nvmlDeviceGetTotalEnergyConsumption=total_energy,
        nvmlDeviceGetPowerUsage=lambda handle: state["power"].pop(0))


def test_energy_counter_difference():
    times = iter([10.0, 12.0])
    meter = NvmlMeter(clock=lambda: next(times), module=fake_pynvml(energy_mj=[5_000, 17_500]))
    meter.begin()
    result = meter.end()
    assert result.joules == pytest.approx(12.5) and result.duration_s == 2.0
    assert result.details["method"] == "energy counter" and result.kind == "measured"


def test_pre_volta_falls_back_to_power_integration():
    times = iter([0.0, 1.0, 2.0, 3.0])
    meter = NvmlMeter(clock=lambda: next(times), module=fake_pynvml(power_mw=[100_000, 200_000, 200_000, 100_000]))
    meter.begin()
    meter.sample()
    meter.sample()
    result = meter.end()
    # trapezoids: (100+200)/2 + (200+200)/2 + (200+100)/2 = 500 J over 3 s
    assert result.joules == pytest.approx(500.0) and result.duration_s == 3.0
    assert "power integration" in result.details["method"]


def test_no_gpu_is_reported():
    module = fake_pynvml()
    module.nvmlDeviceGetCount = lambda: 0
    ok, reason = NvmlMeter(module=module).available()
    assert not ok and "no GPU 0" in reason
