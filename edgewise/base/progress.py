"""Progress of long work: libraries report steps here, and the front door decides whether and how they are shown.

Library code (training loops, quantization-aware training) opens a task and advances it; by
default nothing is shown, so the libraries stay silent and UI-free. The front door installs a
reporter (the terminal's progress bars) with `set_reporter`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol


class Task(Protocol):
    """A running piece of work: `advance` marks one step done, with a short status line."""

    def advance(self, info: str = "") -> None:
        """One more step is done; `info` describes where the work stands (loss, score, ...)."""


Reporter = Callable[[str, int], contextlib.AbstractContextManager[Task]]


class _Silent:
    def advance(self, info: str = "") -> None:
        pass


@contextlib.contextmanager
def silent(label: str, total: int) -> Iterator[Task]:
    """The default reporter: shows nothing."""
    yield _Silent()


_reporter: Reporter = silent


def set_reporter(reporter: Reporter) -> Reporter:
    """Show progress through `reporter(label, total)` from now on; returns the reporter it replaces."""
    global _reporter
    previous, _reporter = _reporter, reporter
    return previous


def task(label: str, total: int) -> contextlib.AbstractContextManager[Task]:
    """Open a task of `total` steps named `label` with the installed reporter."""
    return _reporter(label, total)
