"""Hardware targets as data: which backends and power sources exist there, and published figures."""

from edgewise.targets.profiles import load_target, target_names

__all__ = ["load_target", "target_names"]
