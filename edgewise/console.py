"""The kit's terminal output: one stderr console and progress bars that stay quiet when not wanted."""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True, highlight=False)


def progress() -> Progress:
    """A rich progress display for long work; disabled when EDGEWISE_QUIET=1 or not on a terminal."""
    quiet = os.environ.get("EDGEWISE_QUIET") == "1" or not console.is_terminal
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"), console=console, transient=True, disable=quiet,
    )
