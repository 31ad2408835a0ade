"""Hardware targets as data: their profiles by name (shipped, the user's folder, plug-ins), the power source that reads
each, and published figures."""

from edgewise.targets.power_sources import POWER_SOURCES, meter_for, register_power_source
from edgewise.targets.profiles import TARGETS, load_target, register_target, target_names, user_folder

__all__ = ["POWER_SOURCES", "TARGETS", "load_target", "meter_for", "register_power_source", "register_target",
           "target_names", "user_folder"]
