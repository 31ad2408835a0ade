"""The measurement window every energy source implements, its result record, and the error a source raises.

This package uses only the standard library (and pynvml where NVML is read) and relative
imports: it is part of the board package (edgewise.board), which deploy bundles ship whole, so
the board's runner measures the way the kit does.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from ..system import procfs, sysfs

__all__ = ["KINDS", "EnergyMeter", "EnergyResult", "MeterError", "procfs", "sysfs", "unavailable"]


class MeterError(UserError):
    """An energy source that cannot be read as asked, with the fix."""

KINDS = ("measured", "emulated", "estimated", "unavailable")


@dataclass
class EnergyResult:
    """Energy over one window: joules, mean watts, duration, the source, and whether it was measured at all.

    `kind` is measured (a counter or sensor), emulated (a cost model), estimated (from published
    figures), or unavailable (then `joules` and `mean_w` are None and `reason` says why).
    """

    joules: float | None
    duration_s: float
    source: str
    kind: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_w(self) -> float | None:
        """Mean power over the window (None when unavailable or the window is empty)."""
        if self.joules is None or self.duration_s <= 0:
            return None
        return self.joules / self.duration_s

    def per_inference(self, inferences: int) -> float | None:
        """Joules per inference for `inferences` run inside the window."""
        return None if self.joules is None or inferences <= 0 else self.joules / inferences

    def net(self, idle_w: float | None) -> float | None:
        """Energy above an idle baseline: gross - P_idle x duration (None without a baseline)."""
        if self.joules is None or idle_w is None:
            return None
        return self.joules - idle_w * self.duration_s

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form with mean_w included."""
        return {"joules": self.joules, "mean_w": self.mean_w, "duration_s": self.duration_s, "source": self.source,
                "kind": self.kind, "reason": self.reason, "details": self.details}


def unavailable(source: str, reason: str) -> EnergyResult:
    """The result where no source exists: no number, only the reason."""
    return EnergyResult(None, 0.0, source, "unavailable", reason)


class EnergyMeter(abc.ABC):
    """A source of energy readings: `begin()` opens a window, `sample()` may be called inside, `end()` closes it.

    Counters (RAPL, NVML) need `sample()` only to catch wraparounds in long windows; power sensors
    (INA3221) integrate the samples taken, so call `sample()` at a steady rate (at least every
    `interval_s`). The clock is injectable for deterministic tests.
    """

    source: str = "energy"
    label: str = "energy"  # how a person names the source

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock

    @abc.abstractmethod
    def available(self) -> tuple[bool, str]:
        """Whether this source can be read here, and if not, why."""

    @abc.abstractmethod
    def begin(self) -> None:
        """Start a window."""

    def sample(self) -> None:  # noqa: B027 (counters need no samples)
        """Take an intermediate reading (wraparound tracking or power integration)."""

    @abc.abstractmethod
    def end(self) -> EnergyResult:
        """Close the window and return its energy."""
