import pytest

from edgewise.board.errors import UserError
from edgewise.targets import load_target, target_names


def test_fantastic4_profiles_load_with_sources_and_assumptions():
    assert {"fantastic4-fpga", "fantastic4-asic"} <= set(target_names())
    fpga = load_target("fantastic4-fpga")
    assert fpga["published"]["throughput_tops"] == 2.45 and fpga["published"]["power_w"] == 3.6
    assert "arXiv 2012.11331" in fpga["published"]["source"] and fpga["kind"] == "emulated"
    assert "clock_mhz" in fpga["assumptions"]


def test_unknown_target():
    with pytest.raises(UserError, match="unknown target 'jetson-mars'"):
        load_target("jetson-mars")


BOARD = """name: {name}
description: a user's board
kind: board
device_tree_model: Acme Widget Board
backends: [onnxruntime-cpu]
power_source: {source}
gpu: {{architecture: none}}
power_modes: {{MAX: {{gpu_mhz: 500, memory_gbps: 10, power_w: 5}}}}
default_power_mode: MAX
estimate: {{efficiency: {{fp16: 0.5}}}}
"""


def test_every_shipped_profile_fits_the_schema_of_its_kind():
    kinds = {name: load_target(name)["kind"] for name in target_names()}
    assert set(kinds.values()) == {"host", "gpu", "board", "emulated"}
    assert all(load_target(name)["device_tree_model"].startswith("Jetson ") for name in target_names("board"))


def test_a_board_in_the_users_folder_is_a_target_and_recognised_on_the_board(tmp_path, monkeypatch):
    from edgewise.bench.this_machine import this_board

    folder = tmp_path / "targets"
    folder.mkdir()
    (folder / "acme-widget.yaml").write_text(BOARD.format(name="acme-widget", source="rapl"))
    monkeypatch.setenv("EDGEWISE_TARGETS", str(folder))
    assert "acme-widget" in target_names("board")
    assert load_target("acme-widget")["power_modes"]["MAX"] == {"gpu_mhz": 500, "memory_gbps": 10, "power_w": 5}
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_text("Acme Widget Board rev 2\x00")
    monkeypatch.setenv("EDGEWISE_PROCFS", str(tmp_path / "proc"))
    assert this_board() == "acme-widget"


@pytest.mark.parametrize(("change", "message"), [
    (lambda text: text.replace("device_tree_model: Acme Widget Board\n", ""), r"board\.device_tree_model: Field "
     "required"),
    (lambda text: text.replace("kind: board", "kind: toaster"), r"kind"),
    (lambda text: text.replace("power_w: 5", "power_w: -5"), r"power_modes\.MAX\.power_w"),
    (lambda text: text.replace("name: acme-widget", "name: other"), r"names itself 'other'"),
])
def test_a_profile_that_does_not_fit_its_kind_is_refused_naming_the_field(tmp_path, monkeypatch, change, message):
    (tmp_path / "acme-widget.yaml").write_text(change(BOARD.format(name="acme-widget", source="rapl")))
    monkeypatch.setenv("EDGEWISE_TARGETS", str(tmp_path))
    with pytest.raises(UserError, match=message) as caught:
        load_target("acme-widget")
    assert "acme-widget.yaml" in caught.value.problem


PLUGIN = '''"""A board and its power meter, all a user's package needs for the kit to measure there."""
from edgewise.board.energy.window import EnergyMeter, EnergyResult

PROFILE = {"name": "acme-widget", "description": "Acme's widget board", "kind": "board",
           "device_tree_model": "Acme Widget Board", "backends": ["onnxruntime-cpu"], "power_source": "acme-shunt",
           "gpu": {"architecture": "none"}, "power_modes": {"MAX": {"gpu_mhz": 500, "memory_gbps": 10, "power_w": 5}},
           "default_power_mode": "MAX", "estimate": {"efficiency": {"fp16": 0.5}}}


class AcmeShunt(EnergyMeter):
    source, label = "acme-shunt", "Acme shunt"

    def available(self):
        return True, ""

    def begin(self):
        self.start = self.clock()

    def end(self):
        return EnergyResult(2.0 * (self.clock() - self.start), self.clock() - self.start, self.source, "measured")
'''


def test_a_board_and_its_meter_come_from_one_file_of_a_users_package(tmp_path):
    """Out of tree, through entry points: the package's one module names the profile and the meter; the kit lists
    the board, recognises it, and measures energy there with the package's meter."""
    import os
    import subprocess
    import sys

    site = tmp_path / "site"
    (site / "acme_widget-1.0.dist-info").mkdir(parents=True)
    (site / "acme_widget.py").write_text(PLUGIN)
    (site / "acme_widget-1.0.dist-info/METADATA").write_text("Metadata-Version: 2.1\nName: acme-widget\nVersion: 1.0\n")
    (site / "acme_widget-1.0.dist-info/entry_points.txt").write_text(
        "[edgewise.targets]\nacme-widget = acme_widget:PROFILE\n\n"
        "[edgewise.power_sources]\nacme-shunt = acme_widget:AcmeShunt\n")
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_text("Acme Widget Board rev 2\x00")
    code = ("from edgewise.bench.target_kinds import availability\n"
            "from edgewise.targets import meter_for, load_target\n"
            "status = availability('acme-widget')\n"
            "meter = meter_for(load_target('acme-widget'))[0]\n"
            "print(status['runs_here'], status['figures'], status['energy'], type(meter).__name__)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "EDGEWISE_PROCFS": str(tmp_path / "proc"), "EDGEWISE_TARGETS": str(tmp_path / "none")}
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["True", "measured", "measured", "(Acme", "shunt)", "AcmeShunt"]
