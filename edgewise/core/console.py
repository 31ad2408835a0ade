"""The kit's terminal output: one stderr console, and progress bars for the libraries' long work."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgewise.base import progress

console = Console(stderr=True, highlight=False, soft_wrap=True)
if not console.is_terminal and "COLUMNS" not in os.environ:
    # piped or redirected, rows are as long as they need to be: a file or a grep sees whole names, not 80 columns
    console.width = 10_000


def progress_bars() -> Progress:
    """A rich progress display for long work; disabled when EDGEWISE_QUIET=1 or not on a terminal."""
    quiet = os.environ.get("EDGEWISE_QUIET") == "1" or not console.is_terminal
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"), console=console, transient=True, disable=quiet,
    )


class _Bar:
    def __init__(self, bars: Progress, task: int) -> None:
        self._bars, self._task = bars, task

    def advance(self, info: str = "") -> None:
        self._bars.update(self._task, advance=1, info=info)


_live: Progress | None = None  # the display of the stage now running, which the bars of its steps join


@contextlib.contextmanager
def bar(label: str, total: int) -> Iterator[_Bar]:
    """A progress bar on the console for one task of `total` steps (the reporter the front door installs); inside a
    running stage's display it is a row of that display (rich shows one live display at a time)."""
    if _live is not None:
        task = _live.add_task(label, total=total, info="")
        try:
            yield _Bar(_live, task)
        finally:
            _live.remove_task(task)
        return
    with progress_bars() as bars:
        yield _Bar(bars, bars.add_task(label, total=total, info=""))


@contextlib.contextmanager
def stage_display(model: str, stage: str) -> Iterator[None]:
    """While a stage of `model` runs: a live row with its name and elapsed time, its steps' bars beneath. The line
    that stays is the caller's (done in N s, or reused)."""
    global _live
    previous = _live
    with progress_bars() as bars:
        bars.add_task(f"{model} {stage}", total=None, info="")
        _live = bars
        try:
            yield
        finally:
            _live = previous


progress.set_reporter(bar)
