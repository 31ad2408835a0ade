import stat
import sys

import pytest

from edgewise.board.energy import InaMeter, NvmlMeter, RaplMeter, TegrastatsMeter, detect_meter
from edgewise.board.energy.measure import measure_energy
from edgewise.board.energy.window import EnergyMeter, MeterError
from edgewise.targets import load_target, target_names
from edgewise.targets.power_sources import meter_for


def _rails(sys_root):
    hwmon = sys_root / "bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    hwmon.mkdir(parents=True)
    for name, value in (("in1_label", "VDD_IN"), ("in1_input", "5000"), ("curr1_input", "1000")):
        (hwmon / name).write_text(value + "\n")


def _tegrastats(bin_dir, monkeypatch):
    bin_dir.mkdir()
    script = bin_dir / "tegrastats"
    script.write_text(f"#!{sys.executable}\nprint('RAM 1/2MB VDD_IN 5000mW/5000mW', flush=True)\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_every_profiles_power_source_has_a_meter():
    for name in target_names():
        profile = load_target(name)
        if profile["kind"] != "emulated":
            meter, why = meter_for(profile)  # nothing reads on this bare test machine: each says why
            assert meter is None and why.startswith("no energy source here: "), name


def test_a_jetson_reads_its_rails_first_then_tegrastats(tmp_path, monkeypatch):
    profile = load_target("jetson-orin-nx")
    _tegrastats(tmp_path / "bin", monkeypatch)
    assert isinstance(meter_for(profile)[0], TegrastatsMeter)
    _rails(tmp_path / "sys")
    monkeypatch.setenv("EDGEWISE_SYSFS", str(tmp_path / "sys"))
    assert isinstance(meter_for(profile)[0], InaMeter)
    assert isinstance(detect_meter()[0], InaMeter)


def test_the_host_reads_rapl_under_the_sysfs_root(tmp_path, monkeypatch):
    zone = tmp_path / "sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    for name, value in (("name", "package-0"), ("energy_uj", "1"), ("max_energy_range_uj", "1000000")):
        (zone / name).write_text(value + "\n")
    monkeypatch.setenv("EDGEWISE_SYSFS", str(tmp_path / "sys"))
    assert isinstance(meter_for(load_target("x86-host"))[0], RaplMeter)
    assert isinstance(detect_meter()[0], RaplMeter)
    assert meter_for(load_target("nvidia-gpu"))[1].startswith("no energy source here: nvidia-ml-py is not installed")
    assert NvmlMeter.label == "NVML"


class _Gone(EnergyMeter):
    """A sensor that disappears once the measurement starts."""

    def available(self):
        return True, "here"

    def begin(self):
        raise MeterError("the power rails went away", "check the driver")

    def end(self):
        raise AssertionError("never reached")


def test_a_meter_failing_mid_measurement_gives_unavailable_never_an_abort():
    energy = measure_energy(_Gone(), "", lambda: None, 0.01, 1)
    assert energy == {"kind": "unavailable", "reason": "the power rails went away (fix: check the driver)"}
    assert measure_energy(None, "no energy source here: none", lambda: None, 0.01, 1)["reason"].endswith("none")


@pytest.mark.parametrize("whole_runs", [False, True])
def test_energy_per_inference_and_marginal_energy_from_an_injected_clock(whole_runs):
    class Meter(EnergyMeter):
        """10 W always; the clock moves only when work is done (the loop's own reads cost nothing)."""

        def available(self):
            return True, ""

        def begin(self):
            self.start = now[0]

        def end(self):
            from edgewise.board.energy import EnergyResult

            return EnergyResult(10.0 * (now[0] - self.start), now[0] - self.start, "fake", "measured",
                                details={"start": self.start, "end": now[0]})

    now = [0.0]

    def tick():
        return now[0]

    def sleep(s):
        now[0] += s

    def infer():
        now[0] += 0.01  # one inference: 10 ms

    def run_for(seconds):
        now[0] += 0.5 + seconds  # start-up and load: 0.5 s, then inferences
        return round(seconds / 0.01)

    from edgewise.board.energy import energy_per_inference, marginal_energy

    if whole_runs:
        energy = marginal_energy(Meter(), run_for, 1.0, repeats=2, clock=tick, sleep=sleep)
    else:
        energy = energy_per_inference(Meter(), infer, 1.0, repeats=2, clock=tick, sleep=sleep)
    # 10 W x 10 ms: 0.1 J per inference; the start-up of whole runs cancels in the difference
    assert energy["gross_j_per_inference"] == pytest.approx(0.1) and energy["net_j_per_inference"] == pytest.approx(0)
