"""Which board this machine is: the device tree's model string, and the board profile that recognises it.

Read under the kit's procfs root (EDGEWISE_PROCFS), so a container and a test with a fake tree
both work by setting one variable.
"""

from __future__ import annotations

from edgewise.board.system import procfs
from edgewise.targets import load_target, target_names


def board_model() -> str:
    """The device tree's model string ('' on a machine without one)."""
    try:
        return (procfs() / "device-tree/model").read_text().strip("\x00\n ")
    except OSError:
        return ""


def this_board() -> str | None:
    """The name of the board target this runs on, or None: the board profile whose `device_tree_model` the device
    tree's model string holds (e.g. "NVIDIA Jetson Orin NX Engineering Reference Developer Kit"), the longest
    such match where several do ('Jetson Orin Nano' over a profile's 'Orin')."""
    model = board_model()
    found = [(len(profile["device_tree_model"]), name) for name in target_names("board")
             if (profile := load_target(name))["device_tree_model"] in model]
    return max(found)[1] if found else None
