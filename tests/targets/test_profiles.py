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
