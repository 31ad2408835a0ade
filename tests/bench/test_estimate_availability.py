
import pytest

from edgewise.bench.target_kinds import all_targets, availability
from edgewise.bench.this_machine import this_board
from edgewise.targets import target_names


def test_availability_here():
    rows = {r["target"]: r for r in all_targets()}
    assert rows["fantastic4-asic"]["figures"] == "emulated"
    assert rows["jetson-orin-nx"]["figures"] == "estimated" and "not this machine" in rows["jetson-orin-nx"]["why"]
    assert rows["x86-host"]["energy"].startswith("unavailable: no energy source here: no powercap")
    assert rows["nvidia-gpu"]["runs_here"] is False


@pytest.mark.parametrize(("model", "target"), [
    ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", "jetson-orin-nx"),
    ("NVIDIA Jetson Orin Nano Developer Kit", "jetson-orin-nano"),  # not the Nano: the longest name wins
    ("NVIDIA Jetson Nano Developer Kit", "jetson-nano"),
    ("NVIDIA Jetson AGX Thor Developer Kit", "jetson-agx-thor"),
    ("Raspberry Pi 5 Model B Rev 1.0", None),
])
def test_a_jetson_board_is_recognised(tmp_path, monkeypatch, model, target):
    (tmp_path / "device-tree").mkdir(parents=True)
    (tmp_path / "device-tree/model").write_text(model + "\x00")
    monkeypatch.setenv("EDGEWISE_PROCFS", str(tmp_path))
    assert this_board() == target
    for name in target_names("board"):
        row, here = availability(name), name == target
        assert row["runs_here"] is here and row["figures"] == ("measured" if here else "estimated")


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
    assert availability("jetson-orin-nx")["energy"].startswith("unavailable: no energy source here: no INA3221")
    assert availability("jetson-orin-nx")["runs_here"]


def test_every_kind_a_profile_may_have_is_benchmarked_by_its_class():
    import typing

    from edgewise.bench.target_kinds import TARGET_KINDS
    from edgewise.targets.profiles import TargetProfile

    kinds = {profile.model_fields["kind"].annotation.__args__[0]
             for profile in typing.get_args(typing.get_args(TargetProfile)[0])}
    assert kinds == set(TARGET_KINDS) == {"host", "gpu", "board", "emulated"}
